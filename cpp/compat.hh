// Everything that differs between the Nix releases stowage builds against, in one place.
//
// build.rs turns the version of the Nix it compiles against into NIX_VERSION_MAJOR/MINOR/PATCH
// and force-includes that Nix's config header(s); plugin.cc calls only what is declared here
// for anything whose spelling changed between releases, and has no #if of its own.
#pragma once

#include <eval.hh>
#include <eval-inline.hh>
#include <globals.hh>
#include <primops.hh>
#include <store-api.hh>
#include <value-to-json.hh>

#include <string>
#include <string_view>

#define STOWAGE_NIX_AT_LEAST(major, minor)                                                   \
    (NIX_VERSION_MAJOR > (major) || (NIX_VERSION_MAJOR == (major) && NIX_VERSION_MINOR >= (minor)))

#if !STOWAGE_NIX_AT_LEAST(2, 8)
#error "stowage needs Nix 2.8 or newer"
#endif

namespace stowage::compat {

// The position a primop receives.
using PosArg = const nix::Pos &;

// The string context a string value carries.
using Context = nix::PathSet;

// A primop function, as registered with Nix.
using PrimOpFun = void (*)(nix::EvalState &, PosArg, nix::Value **, nix::Value &);

// A primop value (not a global builtin): for the functions inside builtins.stowage.
inline nix::PrimOp * newPrimOp(nix::EvalState & state, const char * name,
    std::vector<std::string> args, const char * doc, PrimOpFun fun)
{
    auto arity = args.size();
    return new nix::PrimOp{
        .fun = fun, .arity = arity, .name = state.symbols.create(name), .args = std::move(args), .doc = doc};
}

// Throws an error that builtins.tryEval catches, as `throw` does: bad arguments are the
// caller's to handle.
[[noreturn]] inline void throwCatchable(nix::EvalState &, PosArg pos, const std::string & msg)
{
    throw nix::ThrownError({.msg = nix::hintfmt("%s", msg), .errPos = pos});
}

// `v` converted to JSON, forcing it deeply; the string context of everything in it is added
// to `context`.
inline std::string toJSON(nix::EvalState & state, PosArg pos, nix::Value & v, Context & context)
{
    std::ostringstream out;
    nix::printValueAsJSON(state, true, v, pos, out, context);
    return out.str();
}

// Whether the evaluator may write to the store (`nix-instantiate --eval` may not).
inline bool storeIsWritable(nix::EvalState &)
{
    return !nix::settings.readOnlyMode;
}

// Makes `v` the string of `path`, with the path as its context, so that a derivation that
// interpolates it gets the path as an input.
inline void mkStorePathString(nix::EvalState & state, nix::Value & v, const nix::StorePath & path)
{
    auto printed = state.store->printStorePath(path);
    v.mkString(printed, Context{printed});
}

} // namespace stowage::compat
