#[derive(livesync::Row)]
struct Wrapper<T> {
    id: String,
    value: T,
}

fn main() {}
