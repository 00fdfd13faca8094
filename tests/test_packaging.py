"""packaging/hotline.service passes `systemd-analyze verify` with no warning (setup installs
systemd; the install prefix /opt/hotline is pointed at this checkout, whose .venv exists)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "packaging" / "hotline.service"


def verify(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    unit = tmp_path / "hotline.service"
    unit.write_text(text.replace("/opt/hotline", str(ROOT)))
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )


def test_the_unit_verifies_clean(tmp_path: Path) -> None:
    run = verify(UNIT.read_text(), tmp_path)
    assert run.returncode == 0 and run.stdout + run.stderr == "", run.stdout + run.stderr


def test_the_check_catches_a_mistake(tmp_path: Path) -> None:
    run = verify(UNIT.read_text().replace("Restart=on-failure", "Restart=on-failur"), tmp_path)
    assert "restart specifier" in run.stdout + run.stderr
    run = verify(UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict"), tmp_path)
    assert "Unknown key" in run.stdout + run.stderr


def test_the_unit_restarts_on_failure_as_a_dedicated_user_hardened() -> None:
    keys = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert keys["Restart"] == "on-failure" and keys["User"] == "hotline"
    assert keys["ExecStart"].endswith("hotline run --config /etc/hotline/config.toml")
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp", "RestrictNamespaces"):
        assert hardening in keys
    assert keys["RestartPreventExitStatus"] == "2"  # a config error is not retried in a loop
