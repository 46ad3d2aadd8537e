//! `canaryc`: the command-line front end; everything it does lives in [`canary_compiler::cli`].

fn main() {
    std::process::exit(canary_compiler::cli::main());
}
