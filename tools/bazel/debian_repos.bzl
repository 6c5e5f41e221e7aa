"""Repository rules that turn Debian-installed packages into Bazel repositories.

Bazel 4.2.3 cannot download anything on an offline machine, so every external
repository of percore is built from files that `tools/setup.sh` installs.
"""

_RULES_CC_DIR = "/usr/share/bazel/rules/cc"

# Debian's rules_cc 0.0.4 loads `use_cpp_toolchain`, which Bazel 4.2.3's
# toolchain_utils.bzl does not define. These are the only two files that do.
_RULES_CC_PATCHED = [
    "cc/private/rules_impl/compiler_flag.bzl",
    "cc/private/rules_impl/cc_flags_supplier.bzl",
]

def _debian_rules_cc_impl(ctx):
    result = ctx.execute(["cp", "-R", _RULES_CC_DIR + "/.", "."])
    if result.return_code != 0:
        fail("cannot copy %s (is bazel-rules-cc installed?): %s" % (_RULES_CC_DIR, result.stderr))
    for path in _RULES_CC_PATCHED:
        text = ctx.read(path)
        text = text.replace(', "use_cpp_toolchain")', ")")
        text = text.replace(
            "toolchains = use_cpp_toolchain(),",
            'toolchains = ["@bazel_tools//tools/cpp:toolchain_type"],',
        )
        ctx.file(path, text, executable = False)

debian_rules_cc = repository_rule(
    implementation = _debian_rules_cc_impl,
    doc = "rules_cc from Debian's bazel-rules-cc, adapted to Bazel 4.2.3.",
)

def _local_coverage_tools_impl(ctx):
    # Every test depends on these labels; real coverage is not produced offline.
    ctx.file("BUILD", """
filegroup(name = "coverage_report_generator", srcs = [], visibility = ["//visibility:public"])
filegroup(name = "lcov_merger", srcs = [], visibility = ["//visibility:public"])
""")

local_coverage_tools = repository_rule(
    implementation = _local_coverage_tools_impl,
    doc = "Stands in for @remote_coverage_tools so `bazel test` never downloads it.",
)

def _pkg_config(ctx, args):
    result = ctx.execute(["pkg-config"] + args)
    if result.return_code != 0:
        fail("pkg-config %s failed (run tools/setup.sh): %s" % (" ".join(args), result.stderr))
    return [f for f in result.stdout.replace("\n", " ").split(" ") if f]

def _dedup(flags):
    seen = {}
    out = []
    for f in flags:
        if f not in seen:
            seen[f] = True
            out.append(f)
    return out

def _pkg_config_repository_impl(ctx):
    lines = ['package(default_visibility = ["//visibility:public"])', ""]
    for name, modules in ctx.attr.libraries.items():
        cflags = _dedup(_pkg_config(ctx, ["--cflags"] + modules))
        libs = _dedup(_pkg_config(ctx, ["--libs"] + modules) + ctx.attr.extra_linkopts.get(name, []))
        lines.append("cc_library(")
        lines.append('    name = "%s",' % name)
        lines.append("    copts = %s," % repr([f for f in cflags if not f.startswith("-I/usr/include")]))
        lines.append("    linkopts = %s," % repr(libs + ["-pthread"]))
        lines.append(")")
        lines.append("")
    ctx.file("BUILD", "\n".join(lines))

pkg_config_repository = repository_rule(
    implementation = _pkg_config_repository_impl,
    attrs = {
        "libraries": attr.string_list_dict(doc = "target name -> pkg-config modules"),
        "extra_linkopts": attr.string_list_dict(doc = "target name -> flags pkg-config does not know"),
    },
    local = True,
    doc = "One cc_library per entry, with link flags from pkg-config.",
)
