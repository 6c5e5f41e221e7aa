"""percore_fuzz_test: one libFuzzer target, two ways to build it.

With --config=fuzz (clang, -fsanitize=fuzzer) the binary is a real libFuzzer fuzzer; run it as
`bazel-bin/tests/fuzz/NAME tests/fuzz/corpus/NAME -max_total_time=60`. Without it, the same
target links a small driver that replays the committed seed corpus, so every plain
`bazel test` checks that the fuzz entry point builds and that no seed regressed.
"""

load("@rules_cc//cc:defs.bzl", "cc_test")

def percore_fuzz_test(name, srcs, deps = [], **kwargs):
    corpus_dir = "corpus/" + name
    cc_test(
        name = name,
        srcs = srcs,
        args = [native.package_name() + "/" + corpus_dir],
        data = native.glob([corpus_dir + "/**"]),
        deps = deps + select({
            "//tests/fuzz:fuzzing": [],
            "//conditions:default": ["//tests/fuzz:corpus_replay_main"],
        }),
        **kwargs
    )
