"""Download the images of Species196 manifests (images are distributed as URLs) into an image store.

    python scripts/download_species196.py --root /data/Species196
    python scripts/download_species196.py --manifest a.json --manifest b.json --out /data/images --workers 8

For users with network access; nothing else in the project downloads anything. Each image is
fetched with retries (exponential back-off; HTTP 4xx other than 408/429 are not retried), checked
to be a decodable image (PIL ``verify``), optionally checked against an expected sha256
(``--checksums``: JSON ``{file_name: sha256}``), and stored content-addressed in the image store
(``objects/<sha[:2]>/<sha256><ext>`` + ``index.json``, see ``common.data.species196.ImageStore``).
Failures are appended to ``failures.jsonl`` (file name, URL, error, attempts) and a summary with the
URL-availability rate goes to ``download_summary.json``. Re-running resumes: images already in the
store with a matching checksum are skipped (``--skip-failed`` also skips earlier failures).
"""
import argparse
import io
import json
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.atomic import atomic_path  # noqa: E402
from common.data.species196 import (ImageStore, Species196FormatError, load_manifest, sha256_bytes,  # noqa: E402
                                    url_extension)

DEFAULT_MANIFESTS = ("Species196_L_v0.1/species196L_train.json", "Species196_L_v0.1/species196L_val.json",
                     "Species196_U/species196U.json")
USER_AGENT = "noah-ms-species196-downloader/1.0"


class PermanentError(Exception):
    """A failure that retrying will not fix (HTTP 404, not an image, checksum mismatch)."""


def fetch(url, timeout):
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def check_image(data):
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except Exception as e:  # PIL raises many types for non-images
        raise PermanentError(f"not a decodable image ({type(e).__name__}: {e})") from None


def download_one(item, store, retries, timeout, backoff, expected=None, fetcher=fetch):
    """Fetch, validate and store one ``(file_name, url, ext)``; returns ``(status, detail, attempts)``
    with status 'ok' or 'failed'."""
    name, url, ext = item
    attempts, last = 0, None
    for attempt in range(retries + 1):
        attempts = attempt + 1
        try:
            data = fetcher(url, timeout)
            check_image(data)
            if expected is not None and sha256_bytes(data) != expected:
                raise PermanentError(f"sha256 {sha256_bytes(data)[:16]}... differs from the expected {expected[:16]}...")
            store.add(name, data, url, ext)
            return "ok", None, attempts
        except PermanentError as e:
            return "failed", str(e), attempts
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} {e.reason}"
            if 400 <= e.code < 500 and e.code not in (408, 429):
                return "failed", last, attempts
        except (urllib.error.URLError, OSError, ValueError) as e:
            last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        if attempt < retries:
            time.sleep(backoff * (2 ** attempt))
    return "failed", f"gave up after {attempts} attempts: {last}", attempts


def collect(manifests):
    """Unique ``(file_name, url, ext)`` of every image record of the manifests (labelled or not),
    after the manifest has been validated by ``load_manifest``."""
    items, seen = [], {}
    for path in manifests:
        load_manifest(path, require_categories=False)
        for r in json.loads(Path(path).read_text(encoding="utf-8"))["images"]:
            name, url = r["file_name"], r["origin_url"]
            if name in seen:
                if seen[name] != url:
                    raise Species196FormatError(f"{path}: file_name {name!r} appears with two URLs ({seen[name]} and {url})")
                continue
            seen[name] = url
            items.append((name, url, url_extension(url)))
    return items


def read_failures(path):
    if not path.is_file():
        return set()
    out = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            out.add(json.loads(line)["file_name"])
    return out


def download(manifests, out, retries=3, timeout=20.0, backoff=1.0, workers=4, checksums=None, skip_failed=False,
             limit=0, save_every=200, fetcher=fetch, log=print):
    """Download every image of ``manifests`` into the store ``out``; returns the summary dict."""
    out = Path(out)
    store = ImageStore(out)
    items = collect(manifests)
    if limit:
        items = items[:limit]
    expected = {}
    if checksums:
        expected = json.loads(Path(checksums).read_text(encoding="utf-8"))
        if not isinstance(expected, dict):
            raise ValueError(f"--checksums {checksums}: expected a JSON object {{file_name: sha256}}")
    fail_log = out / "failures.jsonl"
    failed_before = read_failures(fail_log) if skip_failed else set()
    todo, present, skipped_failed = [], 0, 0
    for it in items:
        if store.verify(it[0]) and (it[0] not in expected or store.index[it[0]]["sha256"] == expected[it[0]]):
            present += 1
        elif it[0] in failed_before:
            skipped_failed += 1
        else:
            todo.append(it)
    log(f"[download] {len(items)} images: {present} already in {out}, {skipped_failed} earlier failures skipped, "
        f"{len(todo)} to fetch")
    out.mkdir(parents=True, exist_ok=True)
    ok = failed = 0
    with ThreadPoolExecutor(max(1, int(workers))) as pool, open(fail_log, "a", encoding="utf-8") as flog:
        futures = [(it, pool.submit(download_one, it, store, retries, timeout, backoff, expected.get(it[0]), fetcher))
                   for it in todo]
        for k, (it, fut) in enumerate(futures, 1):
            status, detail, attempts = fut.result()
            if status == "ok":
                ok += 1
            else:
                failed += 1
                flog.write(json.dumps({"file_name": it[0], "url": it[1], "error": detail, "attempts": attempts,
                                       "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
                flog.flush()
            if k % save_every == 0:
                store.save_index()
                log(f"[download] {k}/{len(todo)}: {ok} stored, {failed} failed")
    store.save_index()
    available = present + ok
    summary = {"images": len(items), "already_present": present, "downloaded": ok, "failed": failed,
               "skipped_earlier_failures": skipped_failed, "available": available,
               "url_availability": round(available / len(items), 4) if items else 0.0,
               "manifests": [str(m) for m in manifests], "store": str(out)}
    with atomic_path(out / "download_summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    log(f"[download] done: {available}/{len(items)} available ({100 * summary['url_availability']:.1f} %), "
        f"{failed} failed this run (see {fail_log})")
    return summary


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None, help="release folder; default manifests and --out are relative to it")
    ap.add_argument("--manifest", action="append", default=[], help="manifest JSON (repeatable; default: the release's)")
    ap.add_argument("--out", default=None, help="image store folder (default: <root>/images, what data.image_dir reads)")
    ap.add_argument("--retries", type=int, default=3, help="retries per image after the first attempt")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per request")
    ap.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds (doubles each retry)")
    ap.add_argument("--workers", type=int, default=4, help="parallel downloads")
    ap.add_argument("--checksums", default=None, help="JSON {file_name: sha256} of expected contents")
    ap.add_argument("--skip-failed", action="store_true", help="do not retry images listed in failures.jsonl")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images (0: all)")
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    root = Path(a.root) if a.root else None
    manifests = [Path(m) for m in a.manifest]
    if not manifests:
        if root is None:
            print("error: give --root or at least one --manifest", file=sys.stderr)
            return 2
        manifests = [root / m for m in DEFAULT_MANIFESTS if (root / m).is_file()]
        if not manifests:
            print(f"error: no manifest found under {root} (looked for {', '.join(DEFAULT_MANIFESTS)})", file=sys.stderr)
            return 2
    missing = [str(m) for m in manifests if not m.is_file()]
    if missing:
        print(f"error: manifest not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    out = Path(a.out) if a.out else (root / "images" if root else None)
    if out is None:
        print("error: give --out (or --root)", file=sys.stderr)
        return 2
    try:
        download(manifests, out, a.retries, a.timeout, a.backoff, a.workers, a.checksums, a.skip_failed, a.limit)
    except (Species196FormatError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
