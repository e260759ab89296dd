"""Helpers shared by the test suites: the integration suite's helpers for the suites that
run against a fleet of their own (tests/adversarial, tests/vllm), and the body of every
suite's fixture of real GnuPG keys."""

import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_integration_conftest(module_name, fleet_name):
    """tests/integration/conftest.py (Ansible runner, fleet.py wrapper, recap parser,
    fixtures), imported by path under module_name, with its OpenSSH masters going where
    `fleet.py down --name fleet_name` finds and ends them."""
    path = os.path.join(REPO, "tests", "integration", "conftest.py")
    spec = importlib.util.spec_from_file_location(module_name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.FLEET_NAME = fleet_name
    return mod


def gpg_test_keys(tmp_path_factory):
    """Real GnuPG keys (gpg_keys.GpgTestKeys: publisher, protected, attacker, expired, revoked)
    in a fresh temporary directory, their gpg-agents stopped afterwards. A generator: each
    suite's fixture yields from it, in the scope that suite needs."""
    from gpg_keys import GpgTestKeys
    keys = GpgTestKeys(str(tmp_path_factory.mktemp("gpg")))
    try:
        yield keys
    finally:
        keys.stop()
