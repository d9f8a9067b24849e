//! The skeleton every chapter program shares, so that a chapter's `main.rs` holds only what is its
//! own: its experiments with their options (a clap `Subcommand` enum whose doc comment is the
//! first thing `--help` says, naming the chapter), the child roles it starts itself again in, and
//! a dispatch table from experiment to function.
//!
//! ```ignore
//! /// Chapter 2 of the book, "Pages": ...
//! #[derive(Subcommand)]
//! enum Experiment {
//!     /// Print the page size ...
//!     Sizes,
//!     /// Map pages, write one byte into each ...
//!     Touch {
//!         #[arg(long, default_value_t = 1024)]
//!         pages: usize,
//!     },
//! }
//!
//! fn main() -> ExitCode {
//!     vmbook::chapter::main(|experiment: Experiment| match experiment {
//!         Experiment::Sizes => page_sizes(),
//!         Experiment::Touch { pages } => first_touch_faults(pages),
//!     })
//! }
//! ```
//!
//! What every chapter program does the same way lives here, once:
//! - the options every program takes ([`Common`]: `--pause`), flattened into the chapter's own;
//!   a chapter with options that hold for all of its experiments (`file-mappings --dir`) names
//!   them in a clap `Args` struct of its own and starts with [`main_with_options`];
//! - with a subcommand, the banner (the command line that reproduces the output) and that
//!   experiment; with none, the banner and every experiment in the order the enum lists them,
//!   which is the book's order, each with clap's defaults (the defaults are written once, in the
//!   `#[arg]` attributes: the list is built by parsing each subcommand with no arguments);
//! - the child roles a program starts itself in again (`fork` + `exec` of its own binary: the
//!   exec'd side of an experiment, a probe run under valgrind) under one hidden subcommand,
//!   `child`: `posix-shm child exec NAME` ([`child_args`] builds that command line), with
//!   no banner;
//! - the cleanup handler installed first and run last, and an error turned into one line on stderr
//!   and exit status 1 ([`crate::fail::run`]).

use crate::{cleanup, output, pause};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::process::{ExitCode, Termination};

/// The name of the hidden subcommand that holds a program's child roles.
pub const CHILD: &str = "child";

// The options every chapter program takes, whatever the experiment. (A plain comment: clap
// would take a doc comment for the program's `--help` text.)
#[derive(Args)]
pub struct Common {
    /// Stop at each experiment, print this process's pid and what to inspect, wait for Enter.
    #[arg(long, global = true)]
    pub pause: bool,
}

/// The child roles of a chapter that starts no copy of itself.
#[derive(Subcommand)]
pub enum NoRoles {}

// The chapter-wide options of a chapter that has none beyond [`Common`].
#[derive(Args)]
pub struct NoOptions {}

// No doc comments on these two: clap would take them for the program's `--help` text, which
// comes from the chapter's own `Experiment` enum.
#[derive(Subcommand)]
enum Invocation<E: Subcommand, C: Subcommand> {
    #[command(flatten)]
    Experiment(E),
    #[command(subcommand, name = CHILD, hide = true)]
    Child(C),
}

#[derive(Parser)]
#[command(version)]
struct Program<E: Subcommand, C: Subcommand, O: Args> {
    #[command(subcommand)]
    invocation: Option<Invocation<E, C>>,
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    chapter: O,
}

/// The whole `main` of a chapter program without child roles: parse the options, then run the
/// experiment asked for, or every experiment in the book's order (see the module's doc).
pub fn main<E, T>(experiment: impl FnMut(E) -> Result<T>) -> ExitCode
where
    E: Subcommand,
    T: Termination,
{
    main_with_roles(experiment, |never: NoRoles| match never {})
}

/// [`main`] for a chapter program that starts itself again in child roles: `child` runs one.
pub fn main_with_roles<E, C, T>(
    mut experiment: impl FnMut(E) -> Result<T>,
    role: impl FnOnce(C) -> Result<T>,
) -> ExitCode
where
    E: Subcommand,
    C: Subcommand,
    T: Termination,
{
    main_with_options(
        |one: E, _: &NoOptions| experiment(one),
        |one: C, _: &NoOptions| role(one),
    )
}

/// [`main_with_roles`] for a chapter program whose own options `O` (a clap `Args` struct, its
/// fields `global = true`) hold for every experiment and role: each is given them.
pub fn main_with_options<O, E, C, T>(
    mut experiment: impl FnMut(E, &O) -> Result<T>,
    role: impl FnOnce(C, &O) -> Result<T>,
) -> ExitCode
where
    O: Args,
    E: Subcommand,
    C: Subcommand,
    T: Termination,
{
    let program = Program::<E, C, O>::parse();
    pause::enable(program.common.pause);
    let options = &program.chapter;
    let code = crate::fail::run(|| match program.invocation {
        Some(Invocation::Child(one)) => role(one, options).map(Termination::report),
        Some(Invocation::Experiment(one)) => {
            output::banner();
            experiment(one, options).map(Termination::report)
        }
        None => {
            output::banner();
            // Every experiment runs; the first exit code that is not success is the program's.
            let mut code = ExitCode::SUCCESS;
            for one in every_experiment::<E>()? {
                let this = experiment(one, options)?.report();
                if code == ExitCode::SUCCESS {
                    code = this;
                }
            }
            Ok(code)
        }
    });
    // On every path: a child still running is killed and reaped, a name still tracked unlinked.
    cleanup::cleanup_now();
    code
}

/// Every visible experiment, in the order the enum declares them, each with its defaults.
fn every_experiment<E: Subcommand>() -> Result<Vec<E>> {
    let program = output::program_name();
    let command = E::augment_subcommands(clap::Command::new("chapter"));
    command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set())
        .map(|sub| {
            let name = sub.get_name();
            let matches = command
                .clone()
                .try_get_matches_from([program.as_str(), name])
                .with_context(|| format!("`{program} {name}` with its defaults"))?;
            E::from_arg_matches(&matches)
                .with_context(|| format!("`{program} {name}` with its defaults"))
        })
        .collect()
}

/// The arguments that start this program again in a child role: `child ROLE ARGS...`.
pub fn child_args<'a>(role: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    [CHILD, role]
        .into_iter()
        .chain(args.iter().copied())
        .collect()
}

/// The path of this program's own binary, to start it again.
pub fn this_program() -> Result<std::path::PathBuf> {
    std::env::current_exe().context("find this program's path")
}

/// This program started again in a child role: `PROGRAM child ROLE ARGS...`.
pub fn child_command(role: &str, args: &[&str]) -> Result<std::process::Command> {
    let mut command = std::process::Command::new(this_program()?);
    command.args(child_args(role, args));
    Ok(command)
}

/// A clap value parser for a number of pages, from 1 to `max`:
/// `#[arg(long, value_parser = vmbook::chapter::pages_up_to(1 << 18))]`.
pub fn pages_up_to(
    max: usize,
) -> impl Fn(&str) -> std::result::Result<usize, String> + Clone + Send + Sync + 'static {
    move |text| {
        let n: usize = text
            .parse()
            .map_err(|_| format!("`{text}` is not a number of pages"))?;
        if (1..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} pages is out of range 1..={max}"))
        }
    }
}
