# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible.errors import AnsibleFilterError


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def text_table(rows, columns, headers=None):
    """Lines of a left-aligned text table: one header line, then one line per row."""
    if not isinstance(columns, (list, tuple)) or not columns:
        raise AnsibleFilterError("text_table: columns must be a non-empty list of keys")
    headers = list(headers) if headers else [str(c).replace("_", " ") for c in columns]
    if len(headers) != len(columns):
        raise AnsibleFilterError("text_table: %d headers for %d columns" % (len(headers), len(columns)))
    cells = []
    for i, row in enumerate(rows or []):
        if not isinstance(row, dict):
            raise AnsibleFilterError("text_table: row %d is a %s, not a dictionary" % (i, type(row).__name__))
        cells.append([_cell(row.get(c)) for c in columns])
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(headers)]

    def line(values):
        return "  ".join(v.ljust(w) for v, w in zip(values, widths)).rstrip()

    return [line(headers)] + [line(r) for r in cells]


class FilterModule(object):
    def filters(self):
        return {"text_table": text_table}
