fn main() -> std::process::ExitCode {
    cometctl::main_entry()
}
