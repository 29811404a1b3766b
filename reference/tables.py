"""Markdown tables (like the paper's Tables 1 and 4) from train.py eval results.

    python reference/tables.py docs/demo-results/round5-20samples.json [ROW ...]
"""
import json
import sys


def main():
    results = json.load(open(sys.argv[1]))
    rows = sys.argv[2:] or list(results)
    cols = sorted({(r["task"], r["length"]) for r in results[rows[0]]["niah"]}, key=lambda c: (c[0], c[1]))
    print("| model | arith | " + " | ".join(f"{t.upper()}@{l}" for t, l in cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for name in rows:
        acc = {}
        for r in results[name]["niah"]:
            acc.setdefault((r["task"], r["length"]), []).append(r["accuracy"])
        cells = [f"{100 * sum(acc[c]) / len(acc[c]):.0f}" for c in cols]
        print(f"| {name} | {100 * results[name]['arith']:.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
