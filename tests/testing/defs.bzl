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
