//! Typed access to a plugin's key/value settings.

use crate::Error;

/// A plugin's settings: the `settings` table of its stage in the pipeline
/// config (or an alarm's rule parameters), as key/value strings in config
/// order. Getters parse on demand and fail with an error naming the key.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings(Vec<(String, String)>);

impl From<Vec<(String, String)>> for Settings {
    fn from(pairs: Vec<(String, String)>) -> Self {
        Settings(pairs)
    }
}

impl Settings {
    /// The raw value of `key` (the last one when the key repeats).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of a required key.
    ///
    /// # Errors
    /// `invalid-settings` "missing setting `key`" when absent.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key)
            .ok_or_else(|| Error::invalid_settings(format!("missing setting `{key}`")))
    }

    /// A required key parsed as `f64`.
    ///
    /// # Errors
    /// `invalid-settings` when absent or not a number.
    pub fn f64(&self, key: &str) -> Result<f64, Error> {
        parse_f64(key, self.require(key)?)
    }

    /// An optional key parsed as `f64`, `default` when absent.
    ///
    /// # Errors
    /// `invalid-settings` when present but not a number.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64, Error> {
        self.get(key).map_or(Ok(default), |v| parse_f64(key, v))
    }

    /// An optional key parsed as `u64`, `default` when absent.
    ///
    /// # Errors
    /// `invalid-settings` when present but not a non-negative integer.
    pub fn u64_or(&self, key: &str, default: u64) -> Result<u64, Error> {
        self.get(key).map_or(Ok(default), |v| {
            v.trim().parse().map_err(|_| {
                Error::invalid_settings(format!(
                    "setting `{key}`: expected a non-negative integer, got {v:?}"
                ))
            })
        })
    }

    /// An optional key parsed as `true`/`false`, `default` when absent.
    ///
    /// # Errors
    /// `invalid-settings` when present but not `true` or `false`.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, Error> {
        match self.get(key).map(str::trim) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(Error::invalid_settings(format!(
                "setting `{key}`: expected true or false, got {v:?}"
            ))),
        }
    }

    /// All pairs in config order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn parse_f64(key: &str, v: &str) -> Result<f64, Error> {
    v.trim().parse().map_err(|_| {
        Error::invalid_settings(format!("setting `{key}`: expected a number, got {v:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_getters_name_the_key() {
        let s = Settings::from(vec![
            ("scale".into(), "1e3".into()),
            ("unit".into(), "ms".into()),
            ("scale".into(), "2".into()),
        ]);
        assert_eq!(s.f64("scale").unwrap(), 2.0);
        assert_eq!(s.get("unit"), Some("ms"));
        let e = s.f64("unit").unwrap_err();
        assert_eq!(e.message, "setting `unit`: expected a number, got \"ms\"");
        assert_eq!(
            s.require("nope").unwrap_err().message,
            "missing setting `nope`"
        );
        assert_eq!(s.f64_or("offset", 0.5).unwrap(), 0.5);
    }
}
