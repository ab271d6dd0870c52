"""The whole job from Python: distil the embedded teacher into a BiLSTM student, then use it.

    python examples/distill.py CORPUS [OUT] [--max-steps N] [--teacher NAME_OR_PATH]

CORPUS is a text file (one text per line, .txt or .txt.gz) or a folder of them. Re-running the
same command resumes: stage 1 skips its complete shards, training continues from its newest
checkpoint. tests/test_distill.py runs this file on a tiny teacher.
"""

from __future__ import annotations

import argparse

from pipeline import distill


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("out", nargs="?", default="runs/distilled")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--teacher", default=None, help="[default: embedded all-MiniLM-L6-v2]")
    parser.add_argument("--hidden-size", type=int, default=256)
    args = parser.parse_args()

    student = distill(
        args.corpus,
        args.out,
        teacher=args.teacher,
        max_steps=args.max_steps,
        hidden_size=args.hidden_size,
    )
    vectors = student.encode(["A man is playing a guitar.", "Someone plays an instrument."])
    print(f"student -> {args.out}: {len(vectors)} vectors of {vectors.shape[1]} dims")
    print(f"similarity: {float(vectors[0] @ vectors[1]):.3f}")


if __name__ == "__main__":
    main()
