# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The rollout policy filters; the logic is in plugin_utils/_rollout.py."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.modelops.fleet.plugins.plugin_utils import _rollout


def _wrap(fn):
    def call(*args):
        try:
            return fn(*args)
        except _rollout.RolloutError as e:
            raise AnsibleFilterError(str(e))
    call.__name__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


@_wrap
def rollout_plan(hosts, hostvars, serial=None):
    """Canaries, the rest and the frozen hosts per rollout group; the batch size (serial)
    and each host's model_max_fail_percentage are checked."""
    return _rollout.plan(hosts, hostvars, serial)


@_wrap
def rollout_plays(the_plan, hostvars, check_mode=False):
    """[host, play group] for the hosts that have something to do (canaries, then the rest)."""
    return _rollout.plays(the_plan, hostvars, check_mode)


@_wrap
def rollout_hold(host, the_plan, hostvars):
    """Why host's group is left alone ('' when it is not): a canary that did not end upgraded."""
    return _rollout.canary_hold(the_plan, hostvars, host)


@_wrap
def rollout_budget_spent(the_plan, hostvars, max_fail_percentage):
    """Whether the failed hosts exceed the fleet-wide failure budget."""
    return _rollout.budget_spent(the_plan, hostvars, max_fail_percentage)


@_wrap
def rollout_batch(host, the_plan, hostvars, play_hosts, serial, max_fail_percentage, check_mode=False):
    """A host's batch, and whether its group is held or the failure budget is spent."""
    return _rollout.batch_gate(host, the_plan, hostvars, play_hosts, serial, max_fail_percentage, check_mode)


@_wrap
def rollout_summary(the_plan, hostvars):
    """Each host's outcome and the hosts that fail the run."""
    return _rollout.summary(the_plan, hostvars)


class FilterModule(object):
    def filters(self):
        return {
            "rollout_plan": rollout_plan,
            "rollout_plays": rollout_plays,
            "rollout_hold": rollout_hold,
            "rollout_budget_spent": rollout_budget_spent,
            "rollout_batch": rollout_batch,
            "rollout_summary": rollout_summary,
        }
