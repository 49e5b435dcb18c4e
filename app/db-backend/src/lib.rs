//! The database systems Session Backend runs on: one type for the server,
//! its tests and `cargo xtask`, which runs the server's binary rather than
//! compiling it and so cannot share a type that lives in it.

use std::{fmt, str::FromStr};

/// A database system the service speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`: the name in configuration, metrics and
    /// command lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// Which system a database URL names, if it is one we speak.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// The system's own spelling, for tables and messages: `SQLite`, `PostgreSQL`.
impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        })
    }
}

/// Parses [`Backend::name`].
impl FromStr for Backend {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        [Self::Sqlite, Self::Postgres]
            .into_iter()
            .find(|backend| backend.name() == name)
            .ok_or_else(|| format!("`{name}` is not a backend: use `sqlite` or `postgres`"))
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn names_and_urls_name_the_same_backends() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            assert_eq!(backend.name().parse::<Backend>(), Ok(backend));
        }
        assert!("mysql".parse::<Backend>().is_err());
        assert_eq!(Backend::of_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::of_url("postgresql://u@h/d"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("postgres://u@h/d"), Some(Backend::Postgres));
        assert_eq!(Backend::of_url("mysql://u@h/d"), None);
    }
}
