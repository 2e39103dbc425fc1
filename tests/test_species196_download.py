"""scripts/download_species196.py against fixture files served by http.server on 127.0.0.1:
retries on a flaky URL, 404s and non-image responses in the failure log, checksums, resume."""
import functools
import json
import sys
import threading
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from common.data.species196 import ImageStore, sha256_bytes
from common.data.species196_fixture import L_DIR, TRAIN_JSON, U_DIR, U_JSON, VAL_JSON, write_fixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import download_species196 as dl  # noqa: E402


class _Handler(SimpleHTTPRequestHandler):
    counts = Counter()
    flaky = set()           # paths that answer 503 on their first request

    def do_GET(self):
        _Handler.counts[self.path] += 1
        if self.path in _Handler.flaky and _Handler.counts[self.path] == 1:
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/fx/source/"
    write_fixture(tmp_path / "fx", 1, 1, 2, 0, base)
    _Handler.counts.clear()
    yield tmp_path / "fx", base
    server.shutdown()
    server.server_close()


def test_download_retries_logs_failures_and_resumes(served, tmp_path):
    fx, base = served
    manifests = [fx / L_DIR / TRAIN_JSON, fx / L_DIR / VAL_JSON, fx / U_DIR / U_JSON]
    raw = [json.loads(m.read_text(encoding="utf-8")) for m in manifests]
    names = {im["file_name"]: im["origin_url"] for r in raw for im in r["images"]}
    flaky_name = "train_003_0000"
    _Handler.flaky = {"/fx/source/" + names[flaky_name].rsplit("/", 1)[1]}
    junk = "val_007_0000"
    (fx / "source" / names[junk].rsplit("/", 1)[1]).write_bytes(b"<html>moved</html>")
    ref = ImageStore(fx / "images")
    bad_sum = "u_00001"
    (tmp_path / "sums.json").write_text(json.dumps({bad_sum: "0" * 64, "u_00000": ref.index["u_00000"]["sha256"]}))
    out = tmp_path / "store"
    summary = dl.download(manifests, out, retries=2, timeout=5, backoff=0.01, workers=3,
                          checksums=tmp_path / "sums.json", log=lambda *_: None)
    failures = {json.loads(line)["file_name"]: json.loads(line) for line in
                (out / "failures.jsonl").read_text().splitlines()}
    assert set(failures) == {"train_dead_url", junk, bad_sum}
    assert "HTTP 404" in failures["train_dead_url"]["error"] and failures["train_dead_url"]["attempts"] == 1
    assert "not a decodable image" in failures[junk]["error"]
    assert "differs from the expected" in failures[bad_sum]["error"]
    assert _Handler.counts[next(iter(_Handler.flaky))] == 2                    # 503, then success
    assert summary["images"] == len(names) and summary["failed"] == 3
    assert summary["url_availability"] == pytest.approx((len(names) - 3) / len(names), abs=1e-4)
    store = ImageStore(out)
    for name in names:
        if name in failures:
            assert store.path(name) is None
        else:
            assert store.index[name]["sha256"] == ref.index[name]["sha256"]
            assert sha256_bytes(store.path(name).read_bytes()) == ref.index[name]["sha256"]
    assert json.loads((out / "download_summary.json").read_text())["downloaded"] == len(names) - 3
    # resume: stored images are not fetched again; earlier failures are retried unless skipped
    _Handler.counts.clear()
    again = dl.download(manifests, out, retries=0, timeout=5, backoff=0.01, workers=2, skip_failed=True,
                        log=lambda *_: None)
    assert sum(_Handler.counts.values()) == 0
    assert again["already_present"] == len(names) - 3 and again["skipped_earlier_failures"] == 3


def test_cli_errors(tmp_path, capsys):
    assert dl.main(["--manifest", str(tmp_path / "nope.json"), "--out", str(tmp_path)]) == 2
    assert "manifest not found" in capsys.readouterr().err
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({"images": [{"id": 1, "file_name": "a"}]}))
    assert dl.main(["--manifest", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "'origin_url' is missing" in capsys.readouterr().err
