# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The end of every module's main(), in one place: run the module's manager, exit with its
result, and turn the errors the module expects into a failure whose message is the error's
(an OSError names the path it concerns).

Private to the collection; the interface may change without notice.
"""

from __future__ import annotations


def run_and_exit(module, work, errors=(), os_error=None, fail_extra=None, exit_extra=None):
    """result = work(); module.exit_json(**exit_extra, **result). An exception of the
    classes in errors fails the task with str(error) (plus fail_extra); an OSError fails it
    with os_error(error) when os_error is given (else it propagates as a traceback)."""
    try:
        result = work()
    except errors as e:
        module.fail_json(msg=str(e), **(fail_extra or {}))
    except OSError as e:
        if os_error is None:
            raise
        module.fail_json(msg=os_error(e))
    out = dict(exit_extra or {})
    out.update(result)
    module.exit_json(**out)
