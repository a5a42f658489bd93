// The Nix side of stowage: registers builtins.stowage, converts Nix values to the plain data
// the Rust core takes (and back), and makes the store calls. No image logic lives here.
#include "compat.hh"
#include "rust/cxx.h"
#include "stowage/src/ffi.rs.h"

#include <sstream>

namespace stowage {
namespace {

using namespace nix;

// Forces `v` and checks its type; the error names the builtin, in Nix's words.
void expectType(EvalState & state, compat::PosArg pos, Value & v, ValueType type, const char * builtin)
{
    state.forceValue(v, pos);
    if (v.type() != type)
        compat::throwCatchable(state, pos,
            fmt("stowage.%s: the argument is %s while %s was expected", builtin, showType(v), showType(type)));
}

// Runs a bridge call; its error (already naming the builtin) becomes a Nix evaluation error.
template<typename Call>
auto callRust(EvalState & state, compat::PosArg pos, Call && call) -> decltype(call())
{
    try {
        return call();
    } catch (const rust::Error & e) {
        compat::throwCatchable(state, pos, e.what());
    }
}

void primGoarch(EvalState & state, compat::PosArg pos, Value ** args, Value & v)
{
    expectType(state, pos, *args[0], nString, "goarch");
    auto system = state.forceStringNoCtx(*args[0], pos);
    auto platform = callRust(state, pos, [&] { return ffi::goarch(rust::Str(system.data(), system.size())); });
    auto attrs = state.buildBindings(2);
    attrs.alloc("architecture").mkString(std::string(platform.architecture));
    if (!platform.variant.empty())
        attrs.alloc("variant").mkString(std::string(platform.variant));
    v.mkAttrs(attrs);
}

void primFakeNss(EvalState & state, compat::PosArg pos, Value ** args, Value & v)
{
    expectType(state, pos, *args[0], nAttrs, "fakeNss");
    compat::Context context;
    auto json = compat::toJSON(state, pos, *args[0], context);
    // The files are written while evaluating, before anything is built, so they cannot hold
    // references to store paths (their closure would be missing from the image).
    if (!context.empty())
        compat::throwCatchable(state, pos,
            "stowage.fakeNss: extraPasswdLines and extraGroupLines must not refer to store paths, "
            "since fakeNss is written before anything is built (found a reference to "
                + *context.begin() + "); use a path inside the image, such as /bin/sh");
    auto nar = callRust(state, pos, [&] { return ffi::fake_nss_nar(json); });
    std::string_view bytes(reinterpret_cast<const char *>(nar.data()), nar.size());
    const std::string_view name = "fake-nss";
    // Content-addressed like `builtins.path`: the same arguments give the same path.
    StorePath path = compat::storeIsWritable(state)
        ? [&] {
              StringSource source(bytes);
              return state.store->addToStoreFromDump(source, name, FileIngestionMethod::Recursive, htSHA256);
          }()
        : state.store->makeFixedOutputPath(FileIngestionMethod::Recursive, hashString(htSHA256, bytes), name);
    // Pure evaluation (flakes) may read only what it was allowed to; the path is ours to give.
    state.allowPath(path);
    compat::mkStorePathString(state, v, path);
}

// builtins.stowage: an attribute set, built the first time it is used.
void primStowage(EvalState & state, compat::PosArg, Value **, Value & v)
{
    auto attrs = state.buildBindings(3);
    auto version = ffi::version();
    attrs.alloc("version").mkString(std::string(version.data(), version.size()));
    attrs.alloc("goarch").mkPrimOp(compat::newPrimOp(state, "goarch", {"system"},
        "The GOARCH architecture (and variant) of a Nix system, as image configs carry it:\n"
        "`goarch \"armv7l-linux\"` is `{ architecture = \"arm\"; variant = \"v7\"; }`.",
        primGoarch));
    attrs.alloc("fakeNss").mkPrimOp(compat::newPrimOp(state, "fakeNss", {"args"},
        "A store path with etc/passwd and etc/group (root and nobody, plus `extraPasswdLines` and\n"
        "`extraGroupLines`), etc/nsswitch.conf and an empty var/empty, written from the evaluator.",
        primFakeNss));
    v.mkAttrs(attrs);
}

RegisterPrimOp registerStowage({
    .name = "__stowage",
    .args = {},
    .arity = 0,
    .doc = "Container images from the Nix store: the stowage plugin's functions.",
    .fun = primStowage,
});

} // namespace
} // namespace stowage
