//! Request bodies, read only when a request has passed every check its headers allow, and never
//! beyond a limit: a client cannot make a component hold more than the limit plus one chunk,
//! whatever it sends and however it frames it.

/// Why a body could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More bytes than the limit arrived; reading stopped there.
    TooLarge,
    /// The body broke off or was malformed (a bad chunk, fewer bytes than `Content-Length`).
    Broken,
}

/// Where a body comes from: the host's input stream, or bytes in tests.
pub trait ReadBody {
    /// The whole body, if it is at most `limit` bytes.
    fn read_up_to(&mut self, limit: usize) -> Result<Vec<u8>, BodyError>;
}

/// A request's body, not yet read.
pub struct Body(Box<dyn ReadBody>);

impl Body {
    pub fn new(source: impl ReadBody + 'static) -> Self {
        Self(Box::new(source))
    }

    pub fn empty() -> Self {
        Self::from(Vec::new())
    }

    pub fn read_up_to(&mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        self.0.read_up_to(limit)
    }
}

impl ReadBody for Vec<u8> {
    fn read_up_to(&mut self, limit: usize) -> Result<Vec<u8>, BodyError> {
        if self.len() > limit {
            return Err(BodyError::TooLarge);
        }
        Ok(std::mem::take(self))
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<&str> for Body {
    fn from(text: &str) -> Self {
        Self::new(text.as_bytes().to_vec())
    }
}

/// A body that breaks off, for tests.
#[cfg(test)]
pub struct BrokenBody;

#[cfg(test)]
impl ReadBody for BrokenBody {
    fn read_up_to(&mut self, _limit: usize) -> Result<Vec<u8>, BodyError> {
        Err(BodyError::Broken)
    }
}
