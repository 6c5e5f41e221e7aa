"""Build helpers for percore tests."""

def sanitizer_defines():
    """local_defines for a test that scales its workload down under ASan and TSan.

    The test sees PERCORE_TEST_SANITIZER defined in those builds (and only there).
    """
    return select({
        "//tests/testing:asan": ["PERCORE_TEST_SANITIZER"],
        "//tests/testing:tsan": ["PERCORE_TEST_SANITIZER"],
        "//conditions:default": [],
    })

def per_backend_cc_test(name, deps = [], **kwargs):
    """A cc_test that runs on every back end: NAME on the default (auto: io_uring where it can
    run), NAME_epoll and NAME_poll with PERCORE_TEST_BACKEND set (tests/testing/test_backend.h).

    For the tests every back end must pass (the services' interop tests); the rest of the suite
    runs on the default only.
    """
    deps = deps + ["//tests/testing:test_backend"]
    native.cc_test(name = name, deps = deps, **kwargs)
    for backend in ["epoll", "poll"]:
        native.cc_test(
            name = name + "_" + backend,
            deps = deps,
            env = {"PERCORE_TEST_BACKEND": backend},
            **kwargs
        )
