//! Records the git commit and build time for `/admin/info`.

fn main() {
    opsready_build::emit();
}
