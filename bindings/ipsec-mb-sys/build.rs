//! Generates the raw bindings to intel-ipsec-mb with bindgen, compiles the small C shim that
//! wraps the library's API macros, and links `libIPSec_MB`.
//!
//! Environment:
//! * `IPSEC_MB_INCLUDE_DIR`: where `intel-ipsec-mb.h` is (default `/usr/include`);
//! * `IPSEC_MB_LIB_DIR`: where `libIPSec_MB.so` is, if not on the default linker path.

use std::env;
use std::path::PathBuf;

const INSTALL_HINT: &str = "install Debian's libipsec-mb-dev (intel-ipsec-mb headers and \
     library) and libclang-dev (for bindgen): `apt-get install libipsec-mb-dev libclang-dev`";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/shim.c");
    println!("cargo:rerun-if-changed=csrc/shim.h");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_LIB_DIR");

    let include_dir =
        env::var_os("IPSEC_MB_INCLUDE_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/include"));
    let header = include_dir.join("intel-ipsec-mb.h");
    if !header.is_file() {
        panic!("ipsec-mb-sys: {} not found; {INSTALL_HINT} (or set IPSEC_MB_INCLUDE_DIR)", header.display());
    }
    println!("cargo:rerun-if-changed={}", header.display());

    // The shim: one C function per API macro used (they call function pointers in IMB_MGR).
    cc::Build::new()
        .file("csrc/shim.c")
        .include(&include_dir)
        .define("LINUX", None)
        .define("NO_COMPAT_IMB_API_053", None)
        .opt_level(2)
        .warnings(true)
        .compile("esprit_imb_shim");

    // After the shim, which depends on it.
    if let Some(dir) = env::var_os("IPSEC_MB_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", PathBuf::from(dir).display());
    }
    println!("cargo:rustc-link-lib=IPSec_MB");

    let bindings = bindgen::Builder::default()
        .header("csrc/shim.h")
        .clang_arg(format!("-I{}", include_dir.display()))
        // The header only puts `aligned(64)` on `struct gcm_key_data` under LINUX.
        .clang_arg("-DLINUX")
        // No pre-0.53 compatibility macros (`#define GCM IMB_CIPHER_GCM`, ...).
        .clang_arg("-DNO_COMPAT_IMB_API_053")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .use_core()
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(true)
        // IMB_MGR is only ever handled by pointer; the shim reads the fields that are needed.
        .opaque_type("IMB_MGR")
        .allowlist_type("IMB_MGR")
        .allowlist_type("IMB_JOB")
        .allowlist_type("IMB_ARCH")
        .allowlist_type("IMB_STATUS")
        .allowlist_type("IMB_ERR")
        .allowlist_type("IMB_CIPHER_MODE")
        .allowlist_type("IMB_CIPHER_DIRECTION")
        .allowlist_type("IMB_HASH_ALG")
        .allowlist_type("IMB_CHAIN_ORDER")
        .allowlist_type("IMB_KEY_SIZE_BYTES")
        .allowlist_type("gcm_key_data")
        .allowlist_type("gcm_context_data")
        .allowlist_function("alloc_mb_mgr")
        .allowlist_function("free_mb_mgr")
        .allowlist_function("init_mb_mgr_auto")
        .allowlist_function("imb_get_errno")
        .allowlist_function("imb_get_strerror")
        .allowlist_function("imb_get_version")
        .allowlist_function("imb_get_version_str")
        .allowlist_function("imb_get_feature_flags")
        .allowlist_function("esprit_imb_.*")
        .allowlist_var("IMB_VERSION_NUM")
        .allowlist_var("IMB_VERSION_STR")
        .allowlist_var("IMB_FEATURE_.*")
        .allowlist_var("IMB_FLAG_.*")
        .allowlist_var("IMB_SHA1_BLOCK_SIZE")
        .allowlist_var("IMB_SHA_256_BLOCK_SIZE")
        .allowlist_var("IMB_SHA1_DIGEST_SIZE_IN_BYTES")
        .allowlist_var("IMB_SHA256_DIGEST_SIZE_IN_BYTES")
        .allowlist_var("IMB_MAX_JOBS")
        .allowlist_var("IMB_GCM_IV_DATA_LEN")
        .allowlist_var("IMB_MAX_TAG_LEN")
        .generate()
        .unwrap_or_else(|e| panic!("ipsec-mb-sys: bindgen failed on {}: {e}; {INSTALL_HINT}", header.display()));

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings.write_to_file(out.join("bindings.rs")).expect("ipsec-mb-sys: cannot write bindings.rs");
}
