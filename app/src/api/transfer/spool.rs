//! [`Spool`]: an answer written whole before it is sent, so that reading
//! it from the database never waits for the client. It stays in memory
//! up to [`IN_MEMORY`] bytes, then goes on in an unnamed temporary file
//! (in `TMPDIR`), gone when the answer is.

use poem::Body;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::error::Error;

/// The bytes a spool keeps in memory before it moves to a file.
const IN_MEMORY: usize = 1024 * 1024;

#[derive(Default)]
pub struct Spool {
    memory: Vec<u8>,
    file: Option<tokio::fs::File>,
    /// Bytes moved to the file.
    on_file: u64,
}

impl Spool {
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.memory.extend_from_slice(bytes);
        self.flush_if_full().await
    }

    /// Writes `value` as JSON.
    pub async fn write_json(&mut self, value: &impl serde::Serialize) -> Result<(), Error> {
        serde_json::to_writer(&mut self.memory, value).map_err(|e| {
            tracing::error!(error = %e, "a stored document does not serialize");
            Error::Internal
        })?;
        self.flush_if_full().await
    }

    /// The bytes written so far.
    pub fn len(&self) -> u64 {
        self.on_file + self.memory.len() as u64
    }

    async fn flush_if_full(&mut self) -> Result<(), Error> {
        if self.memory.len() >= IN_MEMORY {
            self.flush().await?;
        }
        Ok(())
    }

    /// Moves what is in memory to the file (made on first use).
    async fn flush(&mut self) -> Result<(), Error> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = tokio::task::spawn_blocking(tempfile::tempfile)
                    .await
                    .map_err(|_| Error::Internal)?
                    .map_err(unspoolable)?;
                self.file.insert(tokio::fs::File::from_std(file))
            }
        };
        file.write_all(&self.memory).await.map_err(unspoolable)?;
        self.on_file += self.memory.len() as u64;
        self.memory.clear();
        Ok(())
    }

    /// The answer's body.
    pub async fn into_body(mut self) -> Result<Body, Error> {
        let Some(mut file) = self.file.take() else { return Ok(Body::from(self.memory)) };
        file.write_all(&self.memory).await.map_err(unspoolable)?;
        file.flush().await.map_err(unspoolable)?;
        file.rewind().await.map_err(unspoolable)?;
        Ok(Body::from_async_read(file))
    }
}

fn unspoolable(e: std::io::Error) -> Error {
    tracing::warn!(error = %e, "cannot write an export's temporary file");
    Error::Unavailable(format!(
        "the export cannot be written to a temporary file ({e}); the server needs a writable TMPDIR"
    ))
}
