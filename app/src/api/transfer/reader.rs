//! Reading a session document as it streams in: serde visitors that hand
//! each part on ([`Part`]: the session, an agent, a batch of its messages,
//! a multi-agent state, a blob a base64 piece at a time) as soon as it is
//! read, so a document of any length is read in bounded memory. Members may come in any order (an agent's
//! `messages` before its `agent_id` are staged under a placeholder); a
//! repeated agent, message or multi-agent state replaces the earlier one,
//! as a second write would. Whatever the document breaks, the error names
//! the path of the first member at fault (`agents[0].messages[7].message`).

use std::{borrow::Cow, cell::Cell, fmt, io::Read, rc::Rc};

use bytes::Bytes;
use entity::{JsonText, agent, message, multi_agent};
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor},
};
use tokio::sync::mpsc;

use super::document::{FORMAT, MultiAgentRecord, SessionRecord, message_model};
use crate::api::{
    fields::{Id, ObjectJson, ObjectOf, Timestamp},
    messages::Message,
    storage::normalize_key,
};

/// A part of the document, in the order read.
pub enum Part {
    /// The session's id, from `session_id` or `session` (whichever comes
    /// first; the other must agree).
    SessionId(String),
    Session(SessionRecord),
    /// An agent whose `messages` come before its other members: they are
    /// staged under [`PENDING`] until it is whole.
    Pending,
    /// An agent, whole; `adopts` its messages staged as [`PENDING`].
    Agent {
        agent: agent::Model,
        adopts: bool,
    },
    /// Messages of an agent sent before them (or of [`PENDING`]).
    Messages(Vec<message::Model>),
    MultiAgent(multi_agent::Model),
    /// A blob's key (below the session's prefix): its value follows.
    Blob(String),
    /// More of the value of the blob named last.
    BlobData(Bytes),
    /// The blob named last is whole.
    BlobEnd,
}

/// The agent id messages are staged under while their agent is not yet
/// whole: a control character, which no id may hold.
pub const PENDING: &str = "\u{1}pending";

/// Messages are handed on this many at a time (or fewer, past [`BATCH_BYTES`]).
const BATCH_ROWS: usize = 256;
const BATCH_BYTES: usize = 1024 * 1024;

/// Why a document was not read to its end.
#[derive(Debug)]
pub enum Unread {
    /// The document is malformed: the path and the problem.
    Malformed(String),
    /// The input ended early or failed, or the parts stopped being taken:
    /// whoever stopped them knows why.
    Stopped,
}

/// What a document may hold.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// The most bytes of the input one member may take.
    pub member: u64,
    /// The most bytes of one blob's value.
    pub value: u64,
}

/// Reads a document from `input`, sending its parts to `parts`.
pub fn read(input: Pieces, parts: mpsc::Sender<Part>, bounds: Bounds) -> Result<(), Unread> {
    let since_mark = Rc::new(Cell::new(0));
    let out =
        Out { parts, since_mark: since_mark.clone(), stopped: Cell::new(false), value_limit: bounds.value };
    let input = Measured {
        input: std::io::BufReader::with_capacity(READ_AHEAD, input),
        since_mark,
        member_limit: bounds.member,
    };
    let mut json = serde_json::Deserializer::from_reader(input);
    let mut track = serde_path_to_error::Track::new();
    let read = JsonText::streaming(|| {
        DocumentSeed { out: &out }.deserialize(serde_path_to_error::Deserializer::new(&mut json, &mut track))
    });
    let at = |text: String| {
        let path = track.path().to_string();
        if path == "." { text } else { format!("{path}: {text}") }
    };
    match read {
        Err(e) if e.io_error_kind() == Some(std::io::ErrorKind::InvalidData) => {
            Err(Unread::Malformed(at(e.to_string().split(" at line ").next().unwrap_or_default().to_owned())))
        }
        Err(_) if out.stopped.get() => Err(Unread::Stopped),
        Err(e) => {
            Err(Unread::Malformed(at(e.to_string().split(" at line ").next().unwrap_or_default().to_owned())))
        }
        Ok(()) => {
            json.end().map_err(|e| Unread::Malformed(format!("unexpected data after the document: {e}")))
        }
    }
}

/// How much of the input is read ahead of the parser.
const READ_AHEAD: usize = 64 * 1024;

/// The input as it arrives: pieces of the request body from a channel.
pub struct Pieces {
    pieces: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl Pieces {
    pub fn new(pieces: mpsc::Receiver<Bytes>) -> Self {
        Self { pieces, current: Bytes::new() }
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.pieces.blocking_recv() {
                Some(piece) => self.current = piece,
                // The body's end (or its sender gave up: it knows why).
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The input as the parser takes it (a byte at a time), counted from where
/// the last member ended. No member may take more than `member_limit`
/// bytes (each is held whole while it is read): past that the input fails.
struct Measured<R> {
    input: R,
    since_mark: Rc<Cell<u64>>,
    member_limit: u64,
}

impl<R: Read> Read for Measured<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.since_mark.get() > self.member_limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "larger than server.body_limit_bytes ({} bytes), the most one member may take",
                    self.member_limit
                ),
            ));
        }
        let n = self.input.read(buf)?;
        self.since_mark.set(self.since_mark.get() + n as u64);
        Ok(n)
    }
}

/// Where the visitors send what they read.
struct Out {
    parts: mpsc::Sender<Part>,
    since_mark: Rc<Cell<u64>>,
    /// The parts stopped being taken.
    stopped: Cell<bool>,
    /// The most bytes of one blob's value.
    value_limit: u64,
}

impl Out {
    fn send<E: de::Error>(&self, part: Part) -> Result<(), E> {
        self.parts.blocking_send(part).map_err(|_| {
            self.stopped.set(true);
            E::custom("the import stopped")
        })
    }

    /// A member has ended: the next one is measured from here.
    fn member_read(&self) {
        self.since_mark.set(0);
    }
}

/// `text` as an error message quotes it: its first 64 characters, escaped.
fn shown(text: &str) -> String {
    let mut shown: String = text.chars().take(64).flat_map(char::escape_debug).collect();
    if text.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}

/// Raises "`name` appears twice" when `seen` is already set.
fn once<E: de::Error>(seen: &mut bool, name: &str) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::custom(format!("`{name}` appears twice")));
    }
    Ok(())
}

struct DocumentSeed<'a> {
    out: &'a Out,
}

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a `{FORMAT}` session document (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let [mut format, mut agents, mut multi_agents, mut blobs, mut complete] = [false; 5];
        // The id of `session_id` and of `session` (`Some(None)`: `null`).
        let (mut named, mut session): (Option<String>, Option<Option<String>>) = (None, None);
        while let Some(key) = map.next_key::<Cow<'_, str>>()? {
            match key.as_ref() {
                "format" => {
                    once(&mut format, "format")?;
                    let value = map.next_value::<Cow<'_, str>>()?;
                    if value != FORMAT {
                        return Err(de::Error::custom(format!(
                            "`format` is `{}`; this server reads `{FORMAT}`",
                            shown(&value)
                        )));
                    }
                }
                "session_id" => {
                    if named.is_some() {
                        return Err(de::Error::custom("`session_id` appears twice"));
                    }
                    let id = map.next_value::<Id>()?.into_string();
                    self.identify(&id, session.as_ref().and_then(Option::as_deref))?;
                    named = Some(id);
                }
                "session" => {
                    if session.is_some() {
                        return Err(de::Error::custom("`session` appears twice"));
                    }
                    let record = map.next_value::<Option<ObjectOf<SessionRecord>>>()?.map(|r| r.0);
                    let id = record.as_ref().map(|r| r.session_id.as_str().to_owned());
                    if let Some(id) = &id {
                        self.identify(id, named.as_deref())?;
                    }
                    session = Some(id);
                    if let Some(record) = record {
                        self.out.send(Part::Session(record))?;
                    }
                }
                "agents" => {
                    once(&mut agents, "agents")?;
                    map.next_value_seed(AgentsSeed { out: self.out })?;
                }
                "multi_agents" => {
                    once(&mut multi_agents, "multi_agents")?;
                    map.next_value_seed(MultiAgentsSeed { out: self.out })?;
                }
                "blobs" => {
                    once(&mut blobs, "blobs")?;
                    // Values are staged under their session's keys as they come.
                    if named.is_none() && !matches!(session, Some(Some(_))) {
                        return Err(de::Error::custom("`blobs` must come after `session_id` (or `session`)"));
                    }
                    map.next_value_seed(BlobsSeed { out: self.out })?;
                }
                "complete" => {
                    once(&mut complete, "complete")?;
                    if !map.next_value::<bool>()? {
                        return Err(de::Error::custom("`complete` must be `true`"));
                    }
                }
                // Members the format does not name are ignored, as
                // everywhere in the API.
                _ => drop(map.next_value::<de::IgnoredAny>()?),
            }
            self.out.member_read();
        }
        for (present, name) in
            [(format, "format"), (named.is_some() || session.is_some(), "session"), (agents, "agents")]
        {
            if !present {
                return Err(de::Error::custom(format!("the document has no `{name}`")));
            }
        }
        if named.is_none() && session == Some(None) {
            return Err(de::Error::custom("`session` is `null` and there is no `session_id`"));
        }
        if !complete {
            return Err(de::Error::custom(
                "the document has no `\"complete\": true`: it was cut short (an export interrupted?)",
            ));
        }
        Ok(())
    }
}

impl DocumentSeed<'_> {
    /// Sends the session's id `id` on, unless `other` (the id read before,
    /// from the other member) names it already; refused if it differs.
    fn identify<E: de::Error>(&self, id: &str, other: Option<&str>) -> Result<(), E> {
        match other {
            None => self.out.send(Part::SessionId(id.to_owned())),
            Some(other) if other == id => Ok(()),
            Some(other) => {
                Err(E::custom(format!("`session_id` and `session.session_id` differ (`{other}`, `{id}`)")))
            }
        }
    }
}

/// `agents`: each agent once.
struct AgentsSeed<'a> {
    out: &'a Out,
}

impl<'de> DeserializeSeed<'de> for AgentsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AgentsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of agents")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(AgentSeed { out: self.out })?.is_some() {}
        Ok(())
    }
}

/// One agent: its members and its messages.
struct AgentSeed<'a> {
    out: &'a Out,
}

impl<'de> DeserializeSeed<'de> for AgentSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

/// An agent's members other than its messages.
#[derive(Default)]
struct AgentFields {
    agent_id: Option<Id>,
    state: Option<ObjectJson>,
    conversation_manager_state: Option<ObjectJson>,
    internal_state: Option<ObjectJson>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
}

impl AgentFields {
    const NAMES: [&str; 6] =
        ["agent_id", "state", "conversation_manager_state", "internal_state", "created_at", "updated_at"];

    fn whole(&self) -> bool {
        self.agent_id.is_some()
            && self.state.is_some()
            && self.conversation_manager_state.is_some()
            && self.internal_state.is_some()
            && self.created_at.is_some()
            && self.updated_at.is_some()
    }

    fn into_model<E: de::Error>(self) -> Result<agent::Model, E> {
        fn given<T, E: de::Error>(field: Option<T>, name: &str) -> Result<T, E> {
            field.ok_or_else(|| E::custom(format!("the agent has no `{name}`")))
        }
        Ok(agent::Model {
            tenant_id: String::new(),
            session_id: String::new(),
            agent_id: given(self.agent_id, "agent_id")?.into_string(),
            state: given(self.state, "state")?.0,
            conversation_manager_state: given(self.conversation_manager_state, "conversation_manager_state")?
                .0,
            internal_state: given(self.internal_state, "internal_state")?.0,
            version: 0,
            created_at: given(self.created_at, "created_at")?.0,
            updated_at: given(self.updated_at, "updated_at")?.0,
        })
    }
}

/// Reads `T` into `slot`, which must be empty.
fn fill<'de, A: MapAccess<'de>, T: Deserialize<'de>>(
    map: &mut A,
    slot: &mut Option<T>,
    name: &str,
) -> Result<(), A::Error> {
    if slot.is_some() {
        return Err(de::Error::custom(format!("`{name}` appears twice")));
    }
    *slot = Some(map.next_value()?);
    Ok(())
}

impl<'de> Visitor<'de> for AgentSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an agent (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut fields = AgentFields::default();
        // Sent (when its members came before its messages); its messages
        // staged as pending (when they came first).
        let (mut sent, mut pending, mut messages) = (false, false, false);
        while let Some(key) = map.next_key::<Cow<'_, str>>()? {
            if sent && AgentFields::NAMES.contains(&key.as_ref()) {
                // All of them came before its messages: this one again.
                return Err(de::Error::custom(format!("`{key}` appears twice")));
            }
            match key.as_ref() {
                "agent_id" => fill(&mut map, &mut fields.agent_id, "agent_id")?,
                "state" => fill(&mut map, &mut fields.state, "state")?,
                "conversation_manager_state" => {
                    fill(&mut map, &mut fields.conversation_manager_state, "conversation_manager_state")?;
                }
                "internal_state" => fill(&mut map, &mut fields.internal_state, "internal_state")?,
                "created_at" => fill(&mut map, &mut fields.created_at, "created_at")?,
                "updated_at" => fill(&mut map, &mut fields.updated_at, "updated_at")?,
                "messages" => {
                    once(&mut messages, "messages")?;
                    let agent_id = if fields.whole() {
                        let agent = std::mem::take(&mut fields).into_model()?;
                        let agent_id = agent.agent_id.clone();
                        self.out.send(Part::Agent { agent, adopts: false })?;
                        sent = true;
                        agent_id
                    } else {
                        self.out.send(Part::Pending)?;
                        pending = true;
                        PENDING.to_owned()
                    };
                    // Each message is measured on its own; the agent's
                    // other members together.
                    self.out.member_read();
                    map.next_value_seed(MessagesSeed { out: self.out, agent_id: &agent_id })?;
                    self.out.member_read();
                }
                _ => drop(map.next_value::<de::IgnoredAny>()?),
            }
        }
        if sent {
            return Ok(());
        }
        self.out.send(Part::Agent { agent: fields.into_model()?, adopts: pending })
    }
}

/// An agent's messages, in batches.
struct MessagesSeed<'a> {
    out: &'a Out,
    agent_id: &'a str,
}

impl<'de> DeserializeSeed<'de> for MessagesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (mut batch, mut bytes) = (Vec::new(), 0);
        while let Some(ObjectOf(record)) = seq.next_element::<ObjectOf<Message>>()? {
            self.out.member_read();
            bytes += record.message.len() + record.redact_message.0.as_ref().map_or(0, |m| m.len());
            batch.push(message_model(record, self.agent_id));
            if batch.len() >= BATCH_ROWS || bytes >= BATCH_BYTES {
                self.out.send(Part::Messages(std::mem::take(&mut batch)))?;
                bytes = 0;
            }
        }
        if !batch.is_empty() {
            self.out.send(Part::Messages(batch))?;
        }
        Ok(())
    }
}

/// `multi_agents`.
struct MultiAgentsSeed<'a> {
    out: &'a Out,
}

impl<'de> DeserializeSeed<'de> for MultiAgentsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for MultiAgentsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of multi-agent states")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(ObjectOf(record)) = seq.next_element::<ObjectOf<MultiAgentRecord>>()? {
            self.out.member_read();
            self.out.send(Part::MultiAgent(record.into_model()))?;
        }
        Ok(())
    }
}

/// `blobs`.
struct BlobsSeed<'a> {
    out: &'a Out,
}

impl<'de> DeserializeSeed<'de> for BlobsSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BlobsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of blobs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(BlobSeed { out: self.out })?.is_some() {}
        Ok(())
    }
}

/// One blob: its `key`, then its `data`.
struct BlobSeed<'a> {
    out: &'a Out,
}

impl<'de> DeserializeSeed<'de> for BlobSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BlobSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a blob (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut key, mut data) = (false, false);
        while let Some(name) = map.next_key::<Cow<'_, str>>()? {
            match name.as_ref() {
                "key" => {
                    once(&mut key, "key")?;
                    let NormalKey(normal) = map.next_value()?;
                    self.out.send(Part::Blob(normal))?;
                }
                "data" => {
                    if !key {
                        return Err(de::Error::custom("a blob's `key` must come before its `data`"));
                    }
                    once(&mut data, "data")?;
                    self.out.member_read();
                    map.next_value_seed(DataSeed { out: self.out })?;
                }
                _ => drop(map.next_value::<de::IgnoredAny>()?),
            }
            self.out.member_read();
        }
        for (present, name) in [(key, "key"), (data, "data")] {
            if !present {
                return Err(de::Error::custom(format!("the blob has no `{name}`")));
            }
        }
        self.out.send(Part::BlobEnd)
    }
}

/// A blob's `data`: base64 pieces, each sent on as it is decoded.
struct DataSeed<'a> {
    out: &'a Out,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of base64 strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut size = 0;
        while let Some(Base64(bytes)) = seq.next_element::<Base64>()? {
            self.out.member_read();
            size += bytes.len() as u64;
            if size > self.out.value_limit {
                return Err(de::Error::custom(format!(
                    "the value is larger than storage.max_value_bytes ({} bytes)",
                    self.out.value_limit
                )));
            }
            if !bytes.is_empty() {
                self.out.send(Part::BlobData(bytes))?;
            }
        }
        Ok(())
    }
}

/// A blob's key as the storage routes normalise it (and no other spelling).
struct NormalKey(String);

impl<'de> Deserialize<'de> for NormalKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let given = Cow::<'_, str>::deserialize(d)?;
        let normal = normalize_key(&given).map_err(de::Error::custom)?;
        if normal != given {
            return Err(de::Error::custom(format!("`{}` is not a normalised key", shown(&given))));
        }
        Ok(Self(normal))
    }
}

/// Bytes written as standard, padded base64.
struct Base64(Bytes);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine;
        let text = Cow::<'_, str>::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| de::Error::custom(format!("not base64: {e}")))?;
        Ok(Self(Bytes::from(bytes)))
    }
}
