//! The contract's rules for the strings the API stores, the same on
//! SQLite and PostgreSQL: ids, `session_type`, and the shape of a message.

use serde::{
    Deserialize, Deserializer,
    de::{IgnoredAny, MapAccess, Visitor},
};

/// Longest id, in bytes of UTF-8.
pub const ID_MAX_BYTES: usize = 255;

/// Longest `session_type`, in characters.
pub const SESSION_TYPE_MAX_CHARS: usize = 64;

/// Checks an identifier: 1 to 255 bytes of UTF-8, no `/`, `\`, `%` or
/// ASCII control characters, not `.` or `..`. `%` is refused because ids
/// travel percent-encoded in paths: a literal `%` cannot be told from an
/// escape by clients that decode before they encode (Schemathesis does).
pub fn id(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        Err("must not be empty")
    } else if value.len() > ID_MAX_BYTES {
        Err("must be at most 255 bytes of UTF-8")
    } else if value == "." || value == ".." {
        Err("must not be `.` or `..`")
    } else if value.contains(['/', '\\', '%']) {
        Err("must not contain `/`, `\\` or `%`")
    } else if value.chars().any(|c| c.is_ascii_control()) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

/// Checks a `session_type`: 1 to 64 characters, no ASCII control
/// characters (so no `\u0000`, which PostgreSQL cannot store in text).
pub fn session_type(value: &str) -> Result<(), &'static str> {
    let chars = value.chars().count();
    if chars == 0 || chars > SESSION_TYPE_MAX_CHARS {
        Err("must be 1 to 64 characters")
    } else if value.chars().any(|c| c.is_ascii_control()) {
        Err("must not contain control characters")
    } else {
        Ok(())
    }
}

/// Checks that `json` is an object with a string `role` and a `content`,
/// reading only those two members.
pub fn message_shape(json: &str) -> Result<(), String> {
    serde_json::from_str::<MessageShape>(json).map(drop).map_err(|e| {
        let text = e.to_string();
        // The position is within the message itself, which only confuses.
        text.split(" at line ").next().unwrap_or(&text).to_owned()
    })
}

/// A message seen only as far as the contract needs it.
struct MessageShape;

impl<'de> Deserialize<'de> for MessageShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageShape)
    }
}

impl<'de> Visitor<'de> for MessageShape {
    type Value = MessageShape;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object with a string `role` and a `content`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let (mut role, mut content) = (false, false);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "role" => {
                    map.next_value::<std::borrow::Cow<'de, str>>()
                        .map_err(|_| serde::de::Error::custom("`role` must be a string"))?;
                    role = true;
                }
                "content" => {
                    map.next_value::<IgnoredAny>()?;
                    content = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (role, content) {
            (true, true) => Ok(MessageShape),
            (false, _) => Err(serde::de::Error::custom("a message needs a string `role`")),
            (true, false) => Err(serde::de::Error::custom("a message needs a `content`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract() {
        for ok in ["a", "tenant:1", "a.b@c.d", "with space", "ünïcödé", "...", "\u{85}", &"x".repeat(255)]
        {
            assert!(id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a%20b",
            "100%",
            "a\u{0}b",
            "tab\t",
            &"x".repeat(256),
            &"é".repeat(128),
        ] {
            assert!(id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn session_types_are_short_printable_strings() {
        for ok in ["AGENT", "MULTI_AGENT", "ünï", &"x".repeat(64), &"é".repeat(64)] {
            assert!(session_type(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A\u{0}B", "line\nbreak", &"x".repeat(65)] {
            assert!(session_type(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_need_a_string_role_and_content() {
        assert!(message_shape(r#"{"role": "user", "content": [], "x": {"deep": [1]}}"#).is_ok());
        assert!(message_shape(r#"{"content": null, "role": "\u0000"}"#).is_ok());
        for bad in
            [r#"{"role": 1, "content": []}"#, r#"{"role": "user"}"#, r#"{"content": []}"#, "[]", "null"]
        {
            assert!(message_shape(bad).is_err(), "{bad}");
        }
    }
}
