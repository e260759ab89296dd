# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import socket


def test_waits_through_loading_until_a_real_completion(stub_engine, module_runner):
    with stub_engine(loading_polls=2, models=["smollm2"], reply="Paris.") as eng:
        res = module_runner("inference_ready", url=eng.url, served_name="smollm2", timeout=30)
    assert res.get("failed") is not True, res
    assert res["ready"] is True
    assert res["changed"] is False
    assert res["completion"] == "Paris."
    assert res["models"] == ["smollm2"]
    # It waited through the two 503 answers (one poll a second) before asking.
    assert res["elapsed"] >= 1.5
    health_calls = [r for r in eng.requests if r[1] == "/health"]
    assert len(health_calls) == 3
    chat = [r for r in eng.requests if r[1] == "/v1/chat/completions"]
    assert len(chat) == 1 and chat[0][2]["model"] == "smollm2"


def test_wrong_served_name_fails_naming_both_names(stub_engine, module_runner):
    with stub_engine(models=["old-model"]) as eng:
        res = module_runner("inference_ready", url=eng.url, served_name="new-model", timeout=2)
    assert res["failed"] is True
    assert res["ready"] is False
    assert "'new-model'" in res["msg"] and "old-model" in res["msg"]
    assert not [r for r in eng.requests if r[1] == "/v1/chat/completions"]


def test_nothing_listening_fails_with_the_url(module_runner):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    res = module_runner("inference_ready", url="http://127.0.0.1:%d" % port,
                        served_name="x", timeout=2)
    assert res["failed"] is True
    assert "127.0.0.1:%d" % port in res["msg"]
    assert "did not become ready" in res["msg"]


def test_api_key_is_sent_and_never_echoed(stub_engine, module_runner):
    key = "sk-test-0123456789abcdef"
    with stub_engine(api_key=key) as eng:
        res = module_runner("inference_ready", url=eng.url, served_name="smollm2",
                            api_key=key, timeout=10)
    assert res["ready"] is True, res
    assert key not in repr(res)
    models_req = [r for r in eng.requests if r[1] == "/v1/models"][0]
    assert models_req[2].get("Authorization") == "Bearer " + key


def test_wrong_api_key_is_not_ready(stub_engine, module_runner):
    with stub_engine(api_key="right") as eng:
        res = module_runner("inference_ready", url=eng.url, served_name="smollm2",
                            api_key="wrong", timeout=2)
    assert res["failed"] is True
    assert "HTTP 401" in res["msg"] and "Invalid API Key" in res["msg"]
    # api_key is no_log: Ansible masks the value wherever it would appear in the result.
    assert "wrong" not in repr({k: v for k, v in res.items() if k != "invocation"})


def test_without_completion_only_health_and_models(stub_engine, module_runner):
    with stub_engine() as eng:
        res = module_runner("inference_ready", url=eng.url, served_name="smollm2",
                            completion=False, timeout=10)
    assert res["ready"] is True
    assert "completion" not in res
    assert not [r for r in eng.requests if r[1] == "/v1/chat/completions"]
