//! `#[derive(Row)]` rejects shapes it cannot decode with a clear compile error.

#[test]
fn unsupported_shapes_are_compile_errors_with_clear_messages() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/compile_fail/*.rs");
}
