"""Build helpers for percore tests."""

# What every percore test links: GoogleTest with its main, Abseil, and the client side of the
# socket-level tests (tests/testing:test_client).
_COMMON_TEST_DEPS = [
    "//tests/testing:test_client",
    "@system//:absl",
    "@system//:gtest",
    "@system//:gtest_main",
]

def sanitizer_defines():
    """local_defines for a test that scales its workload down under ASan and TSan.

    The test sees PERCORE_TEST_SANITIZER defined in those builds (and only there).
    """
    return select({
        "//tests/testing:asan": ["PERCORE_TEST_SANITIZER"],
        "//tests/testing:tsan": ["PERCORE_TEST_SANITIZER"],
        "//conditions:default": [],
    })

def percore_cc_test(name, deps = [], local_defines = [], **kwargs):
    """A cc_test with the dependencies every percore test repeats.

    Adds GoogleTest (with gtest_main), Abseil and //tests/testing:test_client to `deps` (those
    already listed are not added twice), and defines PERCORE_TEST_SANITIZER under ASan and TSan
    (sanitizer_defines). Everything else (size, tags, env, args, data) passes through.
    """
    native.cc_test(
        name = name,
        deps = deps + [d for d in _COMMON_TEST_DEPS if d not in deps],
        local_defines = local_defines + sanitizer_defines(),
        **kwargs
    )

def per_backend_cc_test(name, deps = [], **kwargs):
    """A percore_cc_test that runs on every back end: NAME on the default (auto: io_uring where
    it can run), NAME_epoll and NAME_poll with PERCORE_TEST_BACKEND set
    (tests/testing/test_backend.h).

    For the tests every back end must pass (the services' interop tests); the rest of the suite
    runs on the default only.
    """
    deps = deps + ["//tests/testing:test_backend"]
    percore_cc_test(name = name, deps = deps, **kwargs)
    for backend in ["epoll", "poll"]:
        percore_cc_test(
            name = name + "_" + backend,
            deps = deps,
            env = {"PERCORE_TEST_BACKEND": backend},
            **kwargs
        )
