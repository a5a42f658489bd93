// The Nix side of stowage: registers builtins.stowage, converts Nix values to the plain data
// the Rust core takes (and back), and makes the store calls. No image logic lives here.
#include "compat.hh"
#include "rust/cxx.h"
#include "stowage-plugin/src/ffi.rs.h"

#include <dlfcn.h>
#include <iostream>
#include <optional>

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

// The bytes of `s`, for Rust to read (as UTF-8 only where it checked they are).
rust::Slice<const uint8_t> bytesOf(std::string_view s)
{
    return rust::Slice<const uint8_t>(reinterpret_cast<const uint8_t *>(s.data()), s.size());
}

void primGoarch(EvalState & state, compat::PosArg pos, Value ** args, Value & v)
{
    expectType(state, pos, *args[0], nString, "goarch");
    auto system = compat::forceStringNoCtx(state, *args[0], pos);
    auto platform = callRust(state, pos, [&] { return ffi::goarch(bytesOf(system)); });
    auto attrs = state.buildBindings(2);
    attrs.alloc("architecture").mkString(std::string(platform.architecture));
    if (!platform.variant.empty())
        attrs.alloc("variant").mkString(std::string(platform.variant));
    v.mkAttrs(attrs);
}

std::string argumentsJSON(
    EvalState & state, compat::PosArg pos, const std::string & function, Value & args, compat::Context & context);

void primFakeNss(EvalState & state, compat::PosArg pos, Value ** args, Value & v)
{
    expectType(state, pos, *args[0], nAttrs, "fakeNss");
    compat::Context context;
    auto json = argumentsJSON(state, pos, "fakeNss", *args[0], context);
    // The files are written while evaluating, before anything is built, so they cannot hold
    // references to store paths (their closure would be missing from the image).
    if (!context.empty())
        compat::throwCatchable(state, pos,
            "stowage.fakeNss: extraPasswdLines and extraGroupLines must not refer to store paths, "
            "since fakeNss is written before anything is built (found a reference to "
                + compat::describe(context) + "); use a path inside the image, such as /bin/sh");
    auto nar = callRust(state, pos, [&] { return ffi::fake_nss_nar(json); });
    auto path = compat::addNarToStore(
        state, "fake-nss", std::string_view(reinterpret_cast<const char *>(nar.data()), nar.size()));
    // Pure evaluation (flakes) may read only what it was allowed to; the path is ours to give.
    state.allowPath(path);
    compat::mkStorePathString(state, v, path);
}

// The attribute of `args` the core named as at fault (`config.Cmd`; `contents[2]` is
// `contents`), followed as deep as it goes; else (an argument is missing) the image's `name`,
// or any argument; null if none has a position. Its position is where the caller wrote it: in a
// flake, the line of the flake's own file, rather than the library's.
const Attr * attrAtFault(EvalState & state, Value & args, std::string_view argument)
{
    const Attr * found = nullptr;
    Value * at = &args;
    for (size_t start = 0; start <= argument.size() && at && at->type() == nAttrs;) {
        auto end = std::min(argument.find('.', start), argument.size());
        auto name = argument.substr(start, end - start);
        auto attr = compat::attrsOf(*at)->get(state.symbols.create(name.substr(0, name.find('['))));
        if (!attr || !compat::hasPos(*attr))
            break;
        found = attr;
        at = name.find('[') == std::string_view::npos ? attr->value : nullptr;
        start = end + 1;
    }
    if (!found) {
        auto name = compat::attrsOf(args)->get(state.symbols.create("name"));
        if (name && compat::hasPos(*name))
            found = name;
    }
    for (auto & attr : *compat::attrsOf(args)) {
        if (found)
            break;
        if (compat::hasPos(attr))
            found = &attr;
    }
    return found;
}

// Whether `s` is UTF-8, as an image's documents must be; a Nix string may hold any bytes.
bool isUtf8(std::string_view s)
{
    return ffi::is_utf8(bytesOf(s));
}

// The first value within `v` (called `path`, as `config.Cmd[0]`) that an image cannot hold, as
// a path and what it is: one with no JSON form (a function), or a string or attribute name that
// is not UTF-8; toJSON's own error names neither, and Nix 2.8 writes such a string as it is.
// Follows what toJSON follows: a set with `outPath` is that path, one with `__toString` its
// string.
std::optional<std::pair<std::string, std::string>> unconvertible(
    EvalState & state, compat::PosArg pos, Value & v, const std::string & path)
{
    state.forceValue(v, pos);
    switch (v.type()) {
    case nFunction:
        return std::make_pair(path, std::string(showType(v)));
    case nString:
        if (!isUtf8(compat::stringOf(v)))
            return std::make_pair(path, std::string("a string that is not UTF-8 (as builtins.readFile gives of a binary file)"));
        return std::nullopt;
    case nAttrs: {
        auto attrs = compat::attrsOf(v);
        if (attrs->get(state.symbols.create("__toString")))
            return std::nullopt;
        if (auto outPath = attrs->get(state.symbols.create("outPath")))
            return unconvertible(state, pos, *outPath->value, path);
        for (auto & attr : *attrs) {
            auto name = compat::attrName(state, attr);
            if (!isUtf8(name))
                return std::make_pair(path, std::string("a set with an attribute name that is not UTF-8"));
            if (auto found = unconvertible(state, pos, *attr.value, path + "." + name))
                return found;
        }
        return std::nullopt;
    }
    case nList:
        for (size_t i = 0; i < v.listSize(); ++i)
            if (auto found = unconvertible(state, pos, *v.listElems()[i], path + "[" + std::to_string(i) + "]"))
                return found;
        return std::nullopt;
    default:
        return std::nullopt;
    }
}

// Throws, naming the builtin `function` and the argument, at the argument's position, if a value
// within `args` is one an image cannot hold.
void refuseUnconvertible(EvalState & state, compat::PosArg pos, const std::string & function, Value & args)
{
    for (auto & attr : *compat::attrsOf(args)) {
        auto name = compat::attrName(state, attr);
        if (!isUtf8(name))
            compat::throwCatchable(state, pos, fmt("stowage.%s: an argument's name is not UTF-8", function));
        auto found = unconvertible(state, pos, *attr.value, name);
        if (!found)
            continue;
        auto at = attrAtFault(state, args, found->first);
        compat::throwCatchable(state, at ? compat::attrPos(*at) : pos,
            fmt("stowage.%s: argument '%s' is %s, which an image cannot hold: give a string, a number, a "
                "boolean, null, a path, a derivation, or a list or set of these",
                function, found->first, found->second));
    }
}

// The arguments `args` of the builtin `function` as JSON, their context added to `context`; a
// value an image cannot hold is an error naming the builtin and the argument.
std::string argumentsJSON(EvalState & state, compat::PosArg pos, const std::string & function, Value & args, compat::Context & context)
{
    std::string json;
    try {
        json = compat::toJSON(state, pos, args, context);
    } catch (nix::Error &) {
        refuseUnconvertible(state, pos, function, args);
        throw;
    }
    if (!isUtf8(json))
        refuseUnconvertible(state, pos, function, args);
    return json;
}

// The arguments of one of the library's functions, checked and normalised by the core (the Nix
// library hands the untouched values to the derivation, so their context is kept there).
void primCheckArgs(EvalState & state, compat::PosArg pos, Value ** args, Value & v)
{
    std::string function(compat::forceStringNoCtx(state, *args[0], pos));
    expectType(state, pos, *args[1], nAttrs, function.c_str());
    compat::Context context;
    auto json = argumentsJSON(state, pos, function, *args[1], context);
    ffi::NixContext nix{settings.thisSystem.get(), state.store->storeDir, {}};
    for (auto & entry : settings.sandboxPaths.get())
        nix.sandbox_paths.push_back(entry);
    auto checked = ffi::check_args(function, json, nix);
    if (!checked.error.empty()) {
        auto attr = attrAtFault(state, *args[1], std::string_view(checked.argument.data(), checked.argument.size()));
        compat::throwCatchable(state, attr ? compat::attrPos(*attr) : pos, std::string(checked.error));
    }
    parseJSON(state, std::string_view(checked.json.data(), checked.json.size()), v);
}

// The image builder (the static `stowage`), added to the store the first time an image needs it.
void primBuilder(EvalState & state, compat::PosArg pos, Value **, Value & v)
{
    auto nar = callRust(state, pos, [&] { return ffi::builder_nar(); });
    auto version = ffi::version();
    auto path = compat::addNarToStore(state, "stowage-" + std::string(version.data(), version.size()),
        std::string_view(reinterpret_cast<const char *>(nar.data()), nar.size()));
    state.allowPath(path);
    compat::mkStorePathString(state, v, path);
}

Value & primOpValue(EvalState & state, const char * name, std::vector<std::string> args, const char * doc, compat::PrimOpFun fun)
{
    auto v = state.allocValue();
    v->mkPrimOp(compat::newPrimOp(state, name, std::move(args), doc, fun));
    return *v;
}

// builtins.stowage: the plugin's Nix library (nix/stowage.nix, bundled), applied to the
// primitives it builds on. Evaluated the first time builtins.stowage is used.
void primStowage(EvalState & state, compat::PosArg pos, Value **, Value & v)
{
    auto prims = state.buildBindings(6);
    auto version = ffi::version();
    prims.alloc("version").mkString(std::string(version.data(), version.size()));
    prims.alloc("system").mkString(settings.thisSystem.get());
    prims.insert(state.symbols.create("goarch"),
        &primOpValue(state, "goarch", {"system"},
            "The GOARCH architecture (and variant) of a Nix system, as image configs carry it:\n"
            "`goarch \"armv7l-linux\"` is `{ architecture = \"arm\"; variant = \"v7\"; }`.",
            primGoarch));
    prims.insert(state.symbols.create("fakeNss"),
        &primOpValue(state, "fakeNss", {"args"},
            "A store path with etc/passwd and etc/group (root and nobody, plus `extraPasswdLines` and\n"
            "`extraGroupLines`), etc/nsswitch.conf and an empty var/empty, written from the evaluator.",
            primFakeNss));
    prims.insert(state.symbols.create("checkArgs"),
        &primOpValue(state, "checkArgs", {"function", "args"}, "Checks the arguments of a library function.",
            primCheckArgs));
    prims.insert(state.symbols.create("builder"),
        &primOpValue(state, "builder", {"ignored"}, "The store path of the image builder.", primBuilder));
    auto vPrims = state.allocValue();
    vPrims->mkAttrs(prims.finish());

    auto library = ffi::library_nix();
    Value vLibrary;
    state.eval(compat::parseBundled(state, std::string(library.data(), library.size())), vLibrary);
    state.callFunction(vLibrary, *vPrims, v, pos);
}

// The plugin is bound to the C++ API of the Nix it was compiled against, and Nix loads any
// plugin it is given: in another release, the first call across that API would crash the
// evaluator. Refuse instead, naming both versions. The running version is looked up by name
// (`nix::nixVersion`, the same symbol in every supported release) rather than referenced: the
// plugin's references to Nix are weak (build.rs), so a direct reference could be null.
bool runningNixMatches()
{
    auto found = static_cast<const std::string *>(dlsym(RTLD_DEFAULT, "_ZN3nix10nixVersionB5cxx11E"));
    std::string_view running = found ? std::string_view(*found) : "(unknown)";
    std::string_view built = STOWAGE_NIX_VERSION;
    auto majorMinor = [](std::string_view v) { return v.substr(0, v.find('.', v.find('.') + 1)); };
    if (found && majorMinor(running) == majorMinor(built))
        return true;
    std::cerr << "stowage: this libstowage.so was built for Nix " << built << " but was loaded into Nix "
              << running << "; builtins.stowage is not available. Build stowage against the Nix you run "
              << "(see its README).\n";
    return false;
}

struct Registration
{
    Registration()
    {
        if (!runningNixMatches())
            return;
        static RegisterPrimOp stowage({
            .name = "__stowage",
            .args = {},
            .arity = 0,
            .doc = "Container images from the Nix store: the stowage plugin's functions.",
            .fun = primStowage,
        });
    }
} registration;

} // namespace
} // namespace stowage
