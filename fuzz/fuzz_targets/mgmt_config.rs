//! Arbitrary text as a configuration file (TOML) and as an API body (JSON): parsing and validation never
//! panic, and a configuration that validates survives both formats unchanged (what the store writes is
//! what a restart reads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mgmt::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for parsed in [Config::from_toml(text), Config::from_json(text)] {
        let Ok(config) = parsed else { continue };
        if config.validate().is_err() {
            continue;
        }
        let toml = config.to_toml().expect("a valid configuration serialises as TOML");
        assert_eq!(Config::from_toml(&toml).expect("what we write parses"), config);
        assert_eq!(Config::from_json(&config.to_json()).expect("what we write parses"), config);
    }
});
