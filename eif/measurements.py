#!/usr/bin/env python3
"""measurements.json for the enclave image, in the format of
nitrosync_shared::measurements::Measurements (shared/src/measurements.rs).

  measurements.py --eif FILE --eif-build-output FILE --inputs FILE --out FILE
      write measurements.json from eif_build's output (its PCR JSON) and a `key=value`
      file of build inputs
  measurements.py --compare A.json B.json [--eif-sha256]
      exit 1 unless A and B have the same PCR0, PCR1 and PCR2 (and EIF SHA-256 if asked)
  measurements.py --summary FILE
      print the PCRs and the EIF's size and SHA-256
"""

import argparse
import hashlib
import json
import os
import re
import sys

FORMAT = "nitrosync-measurements/1"
PCRS = ("PCR0", "PCR1", "PCR2")
HEX48 = re.compile(r"^[0-9a-f]{96}$")


def fail(msg):
    print(f"measurements: error: {msg}", file=sys.stderr)
    sys.exit(1)


def read_eif_build_output(path):
    """eif_build prints 'Output file: ...' and then a JSON object with the PCRs."""
    text = open(path, encoding="utf-8").read()
    start = text.find("{")
    if start < 0:
        fail(f"no JSON object in eif_build's output {path}")
    try:
        pcrs, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as e:
        fail(f"eif_build's output {path} is not JSON: {e}")
    algorithm = pcrs.get("HashAlgorithm", "")
    if not algorithm.startswith("Sha384"):
        fail(f"eif_build reports hash algorithm {algorithm!r}, expected Sha384")
    for name in PCRS:
        value = pcrs.get(name, "")
        if not HEX48.match(value):
            fail(f"eif_build's {name} is {value!r}, not 48 bytes of lowercase hex")
    if "PCR8" in pcrs:
        fail("eif_build reports PCR8: the image was signed, which make eif never does")
    return pcrs


def read_inputs(path):
    inputs = {}
    for number, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            fail(f"{path}:{number}: not key=value: {line!r}")
        if key in inputs:
            fail(f"{path}:{number}: {key} given twice")
        inputs[key] = value
    return inputs


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write(args):
    pcrs = read_eif_build_output(args.eif_build_output)
    doc = {
        "format": FORMAT,
        "kind": "eif",
        "HashAlgorithm": "Sha384",
        "PCR0": pcrs["PCR0"],
        "PCR1": pcrs["PCR1"],
        "PCR2": pcrs["PCR2"],
        "eif_sha256": sha256_file(args.eif),
        "eif_bytes": os.stat(args.eif).st_size,
        "inputs": dict(sorted(read_inputs(args.inputs).items())),
    }
    tmp = args.out + ".part"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, args.out)


def load(path):
    try:
        doc = json.load(open(path, encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        fail(f"cannot read {path}: {e}")
    for name in PCRS:
        if not isinstance(doc.get(name), str):
            fail(f"{path} has no {name}")
    return doc


def compare(args):
    a, b = load(args.compare[0]), load(args.compare[1])
    keys = list(PCRS) + (["eif_sha256"] if args.eif_sha256 else [])
    differ = [k for k in keys if a.get(k) != b.get(k)]
    for k in keys:
        mark = "differs" if k in differ else "same"
        print(f"  {k:<11} {mark:<8} {a.get(k)}")
        if k in differ:
            print(f"  {'':<11} {'':<8} {b.get(k)}")
    if differ:
        # Which inputs differ says where to look (a binary, a ramdisk, the kernel, a toolchain).
        ia, ib = a.get("inputs", {}), b.get("inputs", {})
        for k in sorted(set(ia) | set(ib)):
            if ia.get(k) != ib.get(k):
                print(f"  input {k}: {ia.get(k)!r} / {ib.get(k)!r}")
        print(f"measurements: {', '.join(differ)} differ between {args.compare[0]} and {args.compare[1]}",
              file=sys.stderr)
        sys.exit(1)


def summary(args):
    doc = load(args.summary)
    for k in PCRS:
        print(f"  {k:<22} {doc[k]}")
    print(f"  {'eif_sha256':<22} {doc.get('eif_sha256')}")
    print(f"  {'nitrosync-enclave.eif':<22} {doc.get('eif_bytes')} bytes")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--eif")
    p.add_argument("--eif-build-output")
    p.add_argument("--inputs")
    p.add_argument("--out")
    p.add_argument("--compare", nargs=2, metavar="FILE")
    p.add_argument("--eif-sha256", action="store_true", help="with --compare: also the EIF's SHA-256")
    p.add_argument("--summary", metavar="FILE")
    args = p.parse_args()
    if args.compare:
        compare(args)
    elif args.summary:
        summary(args)
    elif args.eif and args.eif_build_output and args.inputs and args.out:
        write(args)
    else:
        p.error("give --eif, --eif-build-output, --inputs and --out; or --compare; or --summary")


if __name__ == "__main__":
    main()
