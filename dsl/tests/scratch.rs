#[test]
fn scratch() {
    let inputs = std::fs::read_to_string("/tmp/inputs.txt").unwrap();
    for line in inputs.lines() {
        let src = line.replace("\\n", "\n");
        match canary_dsl::parse_and_check(&src) {
            Ok((_, w)) => println!("{src:?}: OK {}", canary_dsl::render(&w, &src, "in", false)),
            Err(d) => println!("{src:?}:\n{}", canary_dsl::render(&d, &src, "in", false)),
        }
    }
}
