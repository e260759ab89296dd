# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for the pip bootstrap script ansible-test downloads.

ansible-test creates one virtual environment per sanity test and bootstraps pip in it
with a get-pip script fetched from a host these machines cannot reach. scripts/setup.sh
puts this file where ansible-test caches that script. It does the same job with what is
reachable: pip from Python's own ensurepip, then the requested packages from the
configured package index.
"""

from __future__ import annotations

import subprocess
import sys

# get-pip's own flags, which `pip install` does not know.
_GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    args = [a for a in sys.argv[1:] if a not in _GET_PIP_ONLY]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"],
                          stdout=subprocess.DEVNULL)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet"] + args)


if __name__ == "__main__":
    main()
