//! Layered, typed configuration: built-in defaults, then an optional TOML
//! file, then `SPEND__SECTION__KEY` environment variables. Validated once at
//! start-up; tests build config values directly instead of touching the
//! process environment.

use std::path::Path;

use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// Loads `T` from defaults → `file` → `SPEND__…` environment variables.
/// `list_keys` (e.g. `gateway.trusted_proxies`) are lists, given in the
/// environment comma-separated.
pub fn load<T>(file: Option<&Path>, list_keys: &[&str]) -> Result<T, ConfigError>
where
    T: Default + Serialize + DeserializeOwned,
{
    let defaults = config::Config::try_from(&T::default()).map_err(|e| ConfigError(e.to_string()))?;
    let mut builder = config::Config::builder().add_source(defaults);
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError(format!("config file {} does not exist", file.display())));
        }
        builder = builder.add_source(config::File::from(file));
    }
    let mut env = config::Environment::with_prefix("SPEND")
        .prefix_separator("__")
        .separator("__")
        .try_parsing(true);
    if !list_keys.is_empty() {
        env = env.list_separator(",");
        for k in list_keys {
            env = env.with_list_parse_key(k);
        }
    }
    builder = builder.add_source(env);
    builder.build().and_then(|c| c.try_deserialize()).map_err(|e| ConfigError(e.to_string()))
}
