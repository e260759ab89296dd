# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""run_and_exit, the end of every module's main()."""

from __future__ import annotations

import pytest

from ansible_collections.modelops.fleet.plugins.module_utils._module import run_and_exit


class Exit(Exception):
    pass


class FakeModule(object):
    def __init__(self):
        self.out = None

    def exit_json(self, **kw):
        self.out = ("exit", kw)
        raise Exit()

    def fail_json(self, **kw):
        self.out = ("fail", kw)
        raise Exit()


class Expected(Exception):
    pass


def boom(exc):
    def work():
        raise exc
    return work


def test_result_and_the_expected_errors():
    m = FakeModule()
    with pytest.raises(Exit):
        run_and_exit(m, lambda: {"changed": True, "x": 1}, Expected, exit_extra={"changed": False})
    assert m.out == ("exit", {"changed": True, "x": 1})  # the result wins over the extra
    with pytest.raises(Exit):
        run_and_exit(m, boom(Expected("names the file")), Expected, fail_extra={"ready": False})
    assert m.out == ("fail", {"msg": "names the file", "ready": False})
    with pytest.raises(Exit):
        run_and_exit(m, boom(OSError(28, "No space left on device")), Expected,
                     os_error=lambda e: "failed on /srv/models: %s" % e)
    assert m.out == ("fail", {"msg": "failed on /srv/models: [Errno 28] No space left on device"})
    # Without os_error an OSError is not hidden, and an unexpected error is never turned into a message.
    with pytest.raises(OSError):
        run_and_exit(m, boom(OSError(13, "Permission denied")), Expected)
    with pytest.raises(KeyError):
        run_and_exit(m, boom(KeyError("bug")), Expected)
