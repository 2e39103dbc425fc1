"""Write an HCCL rank table (``RANK_TABLE_FILE``, format version 1.0) for launches that still use one.

``run_distribute_train_ascend.sh`` uses msrun, which needs no rank table; older launch scripts and
some cluster schedulers still expect one. Device IPs are read from ``/etc/hccn.conf`` (the
``address_<device>=<ip>`` lines that ``hccn_tool`` writes) unless given with ``--device-ips``.

    python ascend/rank_table.py --devices 0-7 --server-ip 10.0.0.1 --out rank_table_8p.json
    python ascend/rank_table.py --devices 0,1 --device-ips 192.98.92.100,192.98.93.100 --out rt.json
    python ascend/rank_table.py --merge rt_node0.json rt_node1.json --out rank_table_16p.json
"""
import argparse
import json
import socket
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.runlog import write_json_atomic  # noqa: E402


def parse_devices(text):
    """'0-7' or '0,1,4' -> sorted unique device ids."""
    ids = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                ids.update(range(lo, hi + 1))
            else:
                ids.add(int(part))
        except ValueError:
            raise ValueError(f"--devices: expected ids like '0-7' or '0,1,4', got '{text}'") from None
    if not ids or min(ids) < 0:
        raise ValueError(f"--devices: expected non-negative ids, got '{text}'")
    return sorted(ids)


def read_hccn_conf(path):
    """{device_id: ip} from ``address_<id>=<ip>`` lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --device-ips, or run on the Ascend host "
                                f"(hccn_tool -i <id> -ip -g shows each device's IP)")
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if line.startswith("address_"):
            key, _, ip = line.partition("=")
            try:
                out[int(key[len("address_"):])] = _check_ip(ip.strip(), f"{path}:{n}")
            except ValueError as e:
                raise ValueError(f"{path}:{n}: {e}") from None
    return out


def _check_ip(ip, where):
    try:
        socket.inet_aton(ip)
    except OSError:
        raise ValueError(f"{where}: '{ip}' is not an IPv4 address") from None
    if ip.count(".") != 3:
        raise ValueError(f"{where}: '{ip}' is not a dotted IPv4 address")
    return ip


def build_table(server_ip, device_ids, device_ips, first_rank=0):
    """One-server rank table; ranks are assigned in device order starting at ``first_rank``."""
    missing = [d for d in device_ids if d not in device_ips]
    if missing:
        raise ValueError(f"no IP for device(s) {missing} (known: {sorted(device_ips)})")
    devices = [{"device_id": str(d), "device_ip": device_ips[d], "rank_id": str(first_rank + i)}
               for i, d in enumerate(device_ids)]
    return {"version": "1.0", "server_count": "1",
            "server_list": [{"server_id": server_ip, "device": devices, "host_nic_ip": "reserve"}],
            "status": "completed"}


def merge_tables(tables):
    """Concatenate servers of several one-server tables, renumbering ranks server by server."""
    servers, rank = [], 0
    for t in tables:
        for s in t["server_list"]:
            if any(s["server_id"] == o["server_id"] for o in servers):
                raise ValueError(f"server {s['server_id']} appears twice")
            devs = []
            for d in s["device"]:
                devs.append({**d, "rank_id": str(rank)})
                rank += 1
            servers.append({**s, "device": devs})
    return {"version": "1.0", "server_count": str(len(servers)), "server_list": servers, "status": "completed"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", default="0-7", help="device ids on this server, e.g. 0-7 or 0,1")
    ap.add_argument("--server-ip", default=None, help="this server's host IP (default: resolved host name)")
    ap.add_argument("--device-ips", default=None, help="comma-separated device IPs in --devices order")
    ap.add_argument("--hccn-conf", default="/etc/hccn.conf")
    ap.add_argument("--merge", nargs="+", default=None, metavar="TABLE", help="merge one-server tables")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        if args.merge:
            tables = []
            for p in args.merge:
                try:
                    tables.append(json.loads(Path(p).read_text()))
                except (OSError, json.JSONDecodeError) as e:
                    raise ValueError(f"{p}: cannot read a rank table ({e})") from None
            table = merge_tables(tables)
        else:
            ids = parse_devices(args.devices)
            if args.device_ips:
                ips = [_check_ip(x.strip(), "--device-ips") for x in args.device_ips.split(",")]
                if len(ips) != len(ids):
                    raise ValueError(f"--device-ips has {len(ips)} addresses for {len(ids)} devices {ids}")
                dev_ips = dict(zip(ids, ips))
            else:
                dev_ips = read_hccn_conf(args.hccn_conf)
            server = args.server_ip or socket.gethostbyname(socket.gethostname())
            table = build_table(_check_ip(server, "--server-ip"), ids, dev_ips)
    except (ValueError, FileNotFoundError) as e:
        print(f"rank_table: {e}", file=sys.stderr)
        return 2
    write_json_atomic(args.out, table)
    n = sum(len(s["device"]) for s in table["server_list"])
    print(f"wrote {args.out}: {table['server_count']} server(s), {n} rank(s); export RANK_TABLE_FILE={args.out} "
          f"RANK_SIZE={n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
