# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A copy of a GGUF model with most of its weights zeroed: it loads and answers, but not sensibly.

    python3 damage_gguf.py SRC DST

The header, metadata and tokenizer (the first half) stay intact, so llama-server still
loads the file; most of the tensor data behind them is zeroed. Run on a test host (copied
there) or imported on the controller.
"""

import os
import sys


def zero_weights(src, dst):
    size = os.path.getsize(src)
    with open(src, "rb") as f, open(dst, "wb") as out:
        out.write(f.read())
    with open(dst, "r+b") as out:
        start, end = size // 2, size - size // 20
        out.seek(start)
        out.write(b"\0" * (end - start))


if __name__ == "__main__":
    zero_weights(sys.argv[1], sys.argv[2])
