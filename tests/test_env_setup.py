"""scripts/env.sh on a machine without the environment: a pin that cannot be installed stops setup
with a message naming the package (and the venv is not marked complete, so the next run retries)."""
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_env_setup_fails_clearly_on_an_uninstallable_pin(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "requirements").mkdir()
    shutil.copy(REPO / "scripts" / "env.sh", repo / "scripts" / "env.sh")
    (repo / "requirements" / "ms.txt").write_text("noah-ms-no-such-package==0.0.1\n")
    (repo / "requirements" / "pt.txt").write_text("# none\n")
    (repo / "requirements" / "dev.txt").write_text("# none\n")
    venv = tmp_path / "venv"
    proc = subprocess.run(["bash", "-c", "source scripts/env.sh && echo SHOULD-NOT-REACH"], cwd=repo,
                          env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path),
                               "NOAH_MS_VENV": str(venv)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    assert "SHOULD-NOT-REACH" not in proc.stdout
    assert "installing the pinned packages failed" in proc.stderr
    assert "noah-ms-no-such-package" in proc.stderr
    assert not (venv / ".complete").exists()
