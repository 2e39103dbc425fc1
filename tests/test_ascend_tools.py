"""ascend/rank_table.py and ascend/convert_offline.sh: formats, numbering and the errors a user
hits on a machine without the CANN / MindSpore Lite tools."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ascend.rank_table import main as rank_table_main, parse_devices  # noqa: E402

CONVERT = ROOT / "ascend" / "convert_offline.sh"


def test_parse_devices():
    assert parse_devices("0-3") == [0, 1, 2, 3]
    assert parse_devices("4,0, 2") == [0, 2, 4]
    for bad in ("3-1", "a", "", "-1"):
        with pytest.raises(ValueError, match="--devices"):
            parse_devices(bad)


def test_rank_table_from_hccn_conf_and_merge(tmp_path, capsys):
    conf = tmp_path / "hccn.conf"
    conf.write_text("".join(f"address_{i}=192.168.10{i}.1\nnetmask_{i}=255.255.255.0\n" for i in range(4)))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert rank_table_main(["--devices", "0-3", "--server-ip", "10.0.0.1", "--hccn-conf", str(conf),
                            "--out", str(a)]) == 0
    t = json.loads(a.read_text())
    assert t["version"] == "1.0" and t["status"] == "completed" and t["server_count"] == "1"
    devs = t["server_list"][0]["device"]
    assert [(d["device_id"], d["device_ip"], d["rank_id"]) for d in devs] == \
        [(str(i), f"192.168.10{i}.1", str(i)) for i in range(4)]
    assert rank_table_main(["--devices", "2,3", "--server-ip", "10.0.0.2", "--device-ips",
                            "192.168.1.2,192.168.1.3", "--out", str(b)]) == 0
    merged = tmp_path / "m.json"
    assert rank_table_main(["--merge", str(a), str(b), "--out", str(merged)]) == 0
    m = json.loads(merged.read_text())
    assert m["server_count"] == "2"
    ranks = [(s["server_id"], d["device_id"], d["rank_id"]) for s in m["server_list"] for d in s["device"]]
    assert ranks == [("10.0.0.1", str(i), str(i)) for i in range(4)] + [("10.0.0.2", "2", "4"), ("10.0.0.2", "3", "5")]
    assert "RANK_SIZE=6" in capsys.readouterr().out


def test_rank_table_errors(tmp_path, capsys):
    out = str(tmp_path / "x.json")
    assert rank_table_main(["--devices", "0-1", "--server-ip", "10.0.0.1", "--hccn-conf",
                            str(tmp_path / "missing.conf"), "--out", out]) == 2
    assert "pass --device-ips" in capsys.readouterr().err
    assert rank_table_main(["--devices", "0-2", "--server-ip", "10.0.0.1", "--device-ips", "1.2.3.4,1.2.3.5",
                            "--out", out]) == 2
    assert "2 addresses for 3 devices" in capsys.readouterr().err
    conf = tmp_path / "hccn.conf"
    conf.write_text("address_0=192.168.1.300\n")
    assert rank_table_main(["--devices", "0", "--server-ip", "10.0.0.1", "--hccn-conf", str(conf), "--out", out]) == 2
    assert "hccn.conf:1" in capsys.readouterr().err
    conf.write_text("address_0=192.168.1.3\n")
    assert rank_table_main(["--devices", "0-1", "--server-ip", "10.0.0.1", "--hccn-conf", str(conf), "--out", out]) == 2
    assert "no IP for device(s) [1]" in capsys.readouterr().err
    assert not Path(out).exists()


def _convert(*args, path=None):
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["bash", str(CONVERT), *map(str, args)], capture_output=True, text=True, env=env)


def test_convert_offline_commands_and_errors(tmp_path):
    air, mindir = tmp_path / "net.air", tmp_path / "net.mindir"
    air.write_bytes(b"\0")
    mindir.write_bytes(b"\0")
    r = _convert(air, "--soc", "Ascend910B1", "--input-shape", "images:1,3,640,640", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["atc", "--framework=1", f"--model={air}", f"--output={tmp_path / 'net'}",
                                "--soc_version=Ascend910B1", "--input_shape=images:1\\,3\\,640\\,640"]
    r = _convert(mindir, "--dry-run")
    assert r.stdout.split() == ["converter_lite", "--fmk=MINDIR", f"--modelFile={mindir}",
                                f"--outputFile={tmp_path / 'net_ascend'}", "--optimize=ascend_oriented"]
    bash_dir = str(Path("/bin"))
    r = _convert(air, path=bash_dir)
    assert r.returncode == 127 and "'atc' is not on PATH" in r.stderr and "set_env.sh" in r.stderr
    r = _convert(mindir, path=bash_dir)
    assert r.returncode == 127 and "'converter_lite' is not on PATH" in r.stderr
    r = _convert(tmp_path / "net.onnx")
    assert r.returncode == 2 and "does not exist" in r.stderr
    (tmp_path / "net.onnx").write_bytes(b"\0")
    r = _convert(tmp_path / "net.onnx")
    assert r.returncode == 2 and "expected a .air or .mindir" in r.stderr
    r = _convert(air, "--input-shape", "1,3,640,640")
    assert r.returncode == 2 and "images:1,3,640,640" in r.stderr
    r = _convert(mindir, "--out", tmp_path / "net")
    assert r.returncode == 2 and "must differ" in r.stderr
