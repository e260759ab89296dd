# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets: the engine's API key (inference_server_api_key, passed to every run of this
session) and the GPG passphrase of the key that signed 2412 never appear in Ansible's
output, the rollout reports, the host journal, the host ledger or this suite's table.

Runs last: by then every case above has run with both secrets in play.
"""

from __future__ import annotations

import os

import pytest

from conftest import ANSIBLE_LOG, HOSTS, REPORTS, RESULTS, table_markdown


def files_under(path):
    for dirpath, dirnames, filenames in os.walk(path):
        for fn in filenames:
            yield os.path.join(dirpath, fn)


@pytest.mark.case("secrets: API key and GPG passphrase", "in use, yet never in output, reports, journal, ledger, table")
def test_secrets_never_leak(world, case):
    secrets = {"api key": world.api_key, "gpg passphrase": world.keys.protected.passphrase}
    # Both are really in use: the engine refuses a request without the key, and 2412 was
    # signed with the passphrase-protected key.
    denied = world.sh_out("gpu-01", "python3 -c \"import urllib.request as u\ntry:\n u.urlopen('http://127.0.0.1:8080/v1/models', timeout=10)\n"
                                    " print('open')\nexcept Exception as e:\n print(getattr(e, 'code', e))\"")
    assert denied.splitlines()[-1].strip() == "401", denied
    assert world.keys.protected.fingerprint in open(ANSIBLE_LOG).read()

    places = {}
    with open(ANSIBLE_LOG) as f:
        places["ansible output (%s)" % os.path.basename(ANSIBLE_LOG)] = f.read()
    for p in files_under(REPORTS):
        with open(p, errors="replace") as f:
            places["report %s" % os.path.relpath(p, REPORTS)] = f.read()
    for h in HOSTS:
        # -o verbose: every field, including the command lines of the processes that logged.
        places["journal of %s" % h] = world.ansible.adhoc(
            h, "-m", "ansible.builtin.command", "-a", "journalctl -o verbose --no-pager").stdout
        places["ledger of %s" % h] = world.sh_out(h, "cat /srv/models/.modelops/state.json")
    places["suite table"] = table_markdown() + " ".join(str(c.observed) for c in RESULTS)
    assert any(k.startswith("report ") for k in places), "no rollout report found in %s" % REPORTS

    leaks = ["%s in %s" % (what, where) for where, text in places.items()
             for what, value in secrets.items() if value in text]
    case.observed = "searched %d places (%d MB): %s" % (
        len(places), sum(len(t) for t in places.values()) >> 20, "; ".join(leaks) or "no leak")
    assert not leaks, leaks
    # The key is on the hosts only in the engine's root-only environment file.
    for h in HOSTS:
        mode = world.sh_out(h, "stat -c '%a %U' /etc/modelops/modelops-inference.env").splitlines()[-1]
        assert mode == "600 root", (h, mode)
    world.serving(case)
