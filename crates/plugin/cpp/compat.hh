// Everything that differs between the Nix releases stowage builds against, in one place.
//
// build.rs turns the version of the Nix it compiles against into NIX_VERSION_MAJOR/MINOR/PATCH
// and force-includes that Nix's config header(s). plugin.cc spells everything whose spelling
// changed between releases through this header and has no #if of its own.
//
// Supported: Nix 2.8 (Debian 12's) and 2.26–2.27, both built and tested by `make test`. Nix 2.28
// moved its headers to nix/<library>/; releases in between changed the API piecemeal and are
// not tested, so they are refused rather than half-supported.
#pragma once

#include <eval.hh>
#include <eval-inline.hh>
#include <globals.hh>
#include <primops.hh>
#include <store-api.hh>
#include <json-to-value.hh>
#include <value-to-json.hh>

#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#define STOWAGE_NIX_AT_LEAST(major, minor)                                                   \
    (NIX_VERSION_MAJOR > (major) || (NIX_VERSION_MAJOR == (major) && NIX_VERSION_MINOR >= (minor)))

#if STOWAGE_NIX_AT_LEAST(2, 28) || (STOWAGE_NIX_AT_LEAST(2, 9) && !STOWAGE_NIX_AT_LEAST(2, 26))     \
    || !STOWAGE_NIX_AT_LEAST(2, 8)
#error "stowage builds against Nix 2.8 or Nix 2.26-2.27"
#endif
#define STOWAGE_NIX_MODERN STOWAGE_NIX_AT_LEAST(2, 26)

namespace stowage::compat {

// The position a primop receives, and the string context a string value carries.
#if STOWAGE_NIX_MODERN
using PosArg = nix::PosIdx;
using Context = nix::NixStringContext;
#else
using PosArg = const nix::Pos &;
using Context = nix::PathSet;
#endif

// A primop function, as registered with Nix.
using PrimOpFun = void (*)(nix::EvalState &, PosArg, nix::Value **, nix::Value &);

// A primop value (not a global builtin): for the functions inside builtins.stowage.
inline nix::PrimOp * newPrimOp(
    nix::EvalState & state, const char * name, std::vector<std::string> args, const char * doc, PrimOpFun fun)
{
    auto arity = args.size();
#if STOWAGE_NIX_MODERN
    (void) state;
    return new nix::PrimOp{.name = name, .args = std::move(args), .arity = arity, .doc = doc, .fun = fun};
#else
    return new nix::PrimOp{
        .fun = fun, .arity = arity, .name = state.symbols.create(name), .args = std::move(args), .doc = doc};
#endif
}

// Throws an error that builtins.tryEval catches, as `throw` does: bad arguments are the
// caller's to handle.
[[noreturn]] inline void throwCatchable(nix::EvalState & state, PosArg pos, const std::string & msg)
{
#if STOWAGE_NIX_MODERN
    state.error<nix::ThrownError>("%s", msg).atPos(pos).debugThrow();
#else
    (void) state;
    throw nix::ThrownError({.msg = nix::hintfmt("%s", msg), .errPos = pos});
#endif
}

// Where the attribute `attr` was written, and whether Nix knows it.
#if STOWAGE_NIX_MODERN
inline PosArg attrPos(const nix::Attr & attr) { return attr.pos; }
inline bool hasPos(const nix::Attr & attr) { return bool(attr.pos); }
// The attributes of `v`, a set.
inline const nix::Bindings * attrsOf(const nix::Value & v) { return v.attrs(); }
#else
inline PosArg attrPos(const nix::Attr & attr) { return *attr.pos; }
inline bool hasPos(const nix::Attr & attr) { return bool(*attr.pos); }
inline nix::Bindings * attrsOf(nix::Value & v) { return v.attrs; }
#endif

// The name of the attribute `attr`.
inline std::string attrName(nix::EvalState & state, const nix::Attr & attr)
{
#if STOWAGE_NIX_MODERN
    return std::string(state.symbols[attr.name]);
#else
    (void) state;
    return std::string(attr.name);
#endif
}

// The string `v` holds, which must have no context.
inline std::string_view forceStringNoCtx(nix::EvalState & state, nix::Value & v, PosArg pos)
{
#if STOWAGE_NIX_MODERN
    return state.forceStringNoCtx(v, pos, "while evaluating the argument of a stowage builtin");
#else
    return state.forceStringNoCtx(v, pos);
#endif
}

// The bytes of the string `v` holds (already forced), context aside.
inline std::string_view stringOf(const nix::Value & v)
{
#if STOWAGE_NIX_MODERN
    return v.string_view();
#else
    return v.string.s;
#endif
}

// `v` converted to JSON, forcing it deeply; the string context of everything in it is added
// to `context`.
inline std::string toJSON(nix::EvalState & state, PosArg pos, nix::Value & v, Context & context)
{
    std::ostringstream out;
    nix::printValueAsJSON(state, true, v, pos, out, context);
    return out.str();
}

// One element of a string context, for messages.
inline std::string describe(const Context & context)
{
#if STOWAGE_NIX_MODERN
    return context.empty() ? "" : context.begin()->to_string();
#else
    return context.empty() ? "" : *context.begin();
#endif
}

// Adds a file tree, given as a NAR, to the store, content-addressed like `builtins.path`
// (the same tree always gets the same path). When the evaluator may not write to the store
// (`nix-instantiate --eval`), only computes that path, as Nix's own builtins do.
inline nix::StorePath addNarToStore(nix::EvalState & state, std::string_view name, std::string_view nar)
{
    auto & store = *state.store;
#if STOWAGE_NIX_MODERN
    if (nix::settings.readOnlyMode)
        return store.makeFixedOutputPath(name,
            nix::FixedOutputInfo{
                .method = nix::FileIngestionMethod::NixArchive,
                .hash = nix::hashString(nix::HashAlgorithm::SHA256, nar),
                .references = {},
            });
    nix::StringSource source(nar);
    return store.addToStoreFromDump(source, name);
#else
    if (nix::settings.readOnlyMode)
        return store.makeFixedOutputPath(
            nix::FileIngestionMethod::Recursive, nix::hashString(nix::htSHA256, nar), name);
    nix::StringSource source(nar);
    return store.addToStoreFromDump(source, name, nix::FileIngestionMethod::Recursive, nix::htSHA256);
#endif
}

// Makes `v` the string of `path`, with the path as its context, so that a derivation that
// interpolates it gets the path as an input.
inline void mkStorePathString(nix::EvalState & state, nix::Value & v, const nix::StorePath & path)
{
#if STOWAGE_NIX_MODERN
    v.mkString(state.store->printStorePath(path), Context{nix::NixStringContextElem::Opaque{.path = path}});
#else
    auto printed = state.store->printStorePath(path);
    v.mkString(printed, Context{printed});
#endif
}

// Parses Nix code that comes with the plugin (its Nix library); `/` is its base path.
inline nix::Expr * parseBundled(nix::EvalState & state, std::string text)
{
#if STOWAGE_NIX_MODERN
    return state.parseExprFromString(std::move(text), state.rootPath(nix::CanonPath::root));
#else
    return state.parseExprFromString(std::move(text), "/");
#endif
}

} // namespace stowage::compat
