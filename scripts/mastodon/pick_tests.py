"""Reads pytest's collected node ids on stdin; prints those the exclusions file leaves in.

An exclusion is an exact node id (with or without its parameters) or a whole file. An
exclusion that matches no collected test is an error: the list must stay true to the suite.
"""

import sys


def main():
    exclusions = []
    with open(sys.argv[1]) as f:
        for line in f:
            entry = line.split("#", 1)[0].strip()
            if entry:
                exclusions.append(entry)
    collected = [line.strip() for line in sys.stdin if "::" in line]
    if not collected:
        sys.exit("pick_tests: pytest collected no tests")
    used = set()
    for node in collected:
        bare = node.split("[", 1)[0]
        hit = [e for e in exclusions if bare == e or bare.startswith(e + "::")]
        used.update(hit)
        if not hit:
            print(node)
    unused = [e for e in exclusions if e not in used]
    if unused:
        sys.exit(f"pick_tests: exclusions that match no test: {unused}")


if __name__ == "__main__":
    main()
