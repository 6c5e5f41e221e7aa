"""The repositories percore's BUILD files name, from this machine's Debian packages.

A workspace that depends on percore (local_repository or an archive named "percore") calls
percore_dependencies() after declaring it, so that @rules_cc and @system inside @percore resolve:

    load("@percore//tools/bazel:percore_deps.bzl", "percore_dependencies")
    percore_dependencies()
"""

load(":debian_repos.bzl", "debian_rules_cc", "local_coverage_tools", "pkg_config_repository")

def percore_dependencies():
    debian_rules_cc(name = "rules_cc")

    local_coverage_tools(name = "remote_coverage_tools")

    # System libraries; link flags come from pkg-config so they stay true to the installed versions.
    pkg_config_repository(
        name = "system",
        libraries = {
            "absl": [
                "absl_base",
                "absl_flags",
                "absl_flags_parse",
                "absl_flags_usage",
                "absl_hash",
                "absl_random_random",
                "absl_raw_hash_set",
                "absl_status",
                "absl_statusor",
                "absl_str_format",
                "absl_strings",
                "absl_synchronization",
                "absl_time",
            ],
            "benchmark": ["benchmark"],
            "gmock": ["gmock"],
            "grpc": ["grpc++", "protobuf"],
            "gtest": ["gtest"],
            "gtest_main": ["gtest_main"],
            "liburing": ["liburing"],
            "openssl": ["openssl"],
        },
        extra_linkopts = {
            "grpc": ["-lgrpc++_reflection"],
            "benchmark": ["-lbenchmark_main"],
        },
    )
