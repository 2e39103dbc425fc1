"""Smoke test of scripts/benchmark_gold_yolo.py: tiny settings end to end (real workers), and the
report when the ONNX export or a worker fails (workers replaced by fixed results)."""
import json
import math

from scripts import benchmark_gold_yolo as bench

# Gold-YOLO at 128 px: anchors at strides 8/16/32 = 16^2 + 8^2 + 4^2; rows of 4 box + 1 + 80 classes.
ANCHORS_128 = 16 * 16 + 8 * 8 + 4 * 4
ROW = 4 + 1 + 80


def test_tiny_run_writes_positive_numbers(tmp_path):
    assert bench.main(["--variant", "n", "--img-size", "128", "--batches", "1", "--train-batch", "1",
                       "--iters", "1", "--warmup", "1", "--threads", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gold_yolo.json").read_text())
    assert (tmp_path / "gold_yolo.png").stat().st_size > 0

    for fw in ("ms", "pt", "ort"):
        r = report["inference"][fw]["1"]
        assert "error" not in r, f"{fw}: {r.get('error')}"
        for key in ("latency_ms", "images_per_s", "first_call_s", "peak_rss_mb"):
            assert r[key] > 0, (fw, key, r[key])
        assert math.isclose(r["images_per_s"], 1e3 / r["latency_ms"], rel_tol=1e-9)
        assert r["output_shape"] == [1, ANCHORS_128, ROW], (fw, r["output_shape"])

    exported = report["export"]["files"]["1"]
    assert exported["max_abs_diff_vs_ms"] <= 1e-4 * max(1.0, exported["max_abs_ms_output"]), exported

    for fw in ("ms", "pt"):
        r = report["train"][fw]
        for key in ("step_s", "images_per_s", "first_step_s", "peak_rss_mb", "loss_first"):
            assert r[key] > 0, (fw, key, r[key])
        assert math.isfinite(r["loss_last"])

    ratios = report["ratios"]
    ms_ips, pt_ips = report["inference"]["ms"]["1"]["images_per_s"], report["inference"]["pt"]["1"]["images_per_s"]
    assert math.isclose(ratios["infer_ms_over_pt"]["1"], ms_ips / pt_ips, rel_tol=1e-9)
    assert ratios["infer_ort_over_ms"]["1"] > 0 and ratios["train_ms_over_pt"] > 0
    load_before, load_after = report["machine"]["load_avg_before"], report["machine"]["load_avg_after"]
    assert len(load_before) == len(load_after) == 3


def test_failed_workers_are_reported_not_raised(tmp_path, monkeypatch):
    started = []

    def fake_worker(spec, timeout, script):
        started.append((spec["framework"], spec["job"]))
        if spec["job"] == "export":
            return {"files": {"1": {"error": "ExportError: no ONNX converter for the op 'make_list'"}}}
        if spec["job"] == "train":
            if spec["framework"] == "ms":
                raise RuntimeError("benchmark worker for ms:gold_yolo_n failed (exit -9):\nKilled")
            return {"batch": 8, "step_s": 2.0, "images_per_s": 4.0, "peak_rss_mb": 100.0}
        ips = {"ms": 40.0, "pt": 16.0}[spec["framework"]]
        return {"batch": 1, "latency_ms": 1e3 / ips, "images_per_s": ips, "peak_rss_mb": 100.0}

    monkeypatch.setattr(bench, "run_in_subprocess", fake_worker)
    assert bench.main(["--img-size", "128", "--batches", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gold_yolo.json").read_text())
    assert ("ort", "infer") not in started
    ort = report["inference"]["ort"]["1"]
    assert ort["error"].startswith("ONNX export failed") and "make_list" in ort["error"]
    assert report["ratios"]["infer_ort_over_ms"]["1"] is None
    assert report["ratios"]["infer_ms_over_pt"]["1"] == 2.5
    assert "Killed" in report["train"]["ms"]["error"] and report["train"]["pt"]["step_s"] == 2.0
    assert report["ratios"]["train_ms_over_pt"] is None
    assert (tmp_path / "gold_yolo.png").stat().st_size > 0
