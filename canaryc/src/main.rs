//! `canaryc`: the command-line front end; everything it does lives in the library ([`canaryc::main`]).

fn main() {
    std::process::exit(canaryc::main());
}
