//! The operation vocabulary: what a converter produces and the engine carries without knowing
//! which kind it is. An [`Operation`] says which entity it is about, what it does to it, who
//! the entity is, and holds its body already serialized for the destination; its [`Key`]
//! orders it against other operations on the same thing and names it in the ledger.
//!
//! The engine reads only the key, the body's length and the ledger fields; everything that
//! depends on the kind (the body's shape, the request's method and path) belongs to the
//! converter that built the body and to the destination that sends it ([`crate::track`]).

use crate::record::{Identifier, ObjectRef, Position, RawRow};

/// What an operation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Entity {
    /// A person, addressed by an [`Identifier`] (id, email or cio_id).
    Person,
    /// An object (`--kind objects`), addressed by an object type id and an object id
    /// ([`ObjectRef`], in [`Operation::object`]).
    Object,
}

impl Entity {
    /// The name used in messages and in the v2 `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Person => "person",
            Entity::Object => "object",
        }
    }
}

/// What an operation does to its entity: the Track API's actions that a converter produces
/// (`add_device`, `delete_device` and `merge` would be further variants of the same kind,
/// added without changing the engine). An object takes [`Action::Identify`] and
/// [`Action::Delete`]; a person's relationship to an object is
/// [`Action::AddRelationships`] or [`Action::DeleteRelationships`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Create or update the entity's attributes.
    Identify,
    /// Record an event on a person (carries an event id: see [`Key::Event`]).
    Event,
    /// Delete the entity.
    Delete,
    /// Suppress a person: delete and refuse to re-create.
    Suppress,
    /// Lift a suppression.
    Unsuppress,
    /// Add (or update) a push device of a person: [`Target::Device`] names its token.
    AddDevice,
    /// Remove a person's device: [`Target::Device`] names its token.
    DeleteDevice,
    /// Merge a person (the secondary, [`Target::Secondary`]) into the operation's person
    /// (the primary), who remains; the secondary is deleted. Irreversible.
    Merge,
    /// Relate a person to an object (`--kind relationships`), with the relationship's
    /// attributes: the person's `add_relationships`.
    AddRelationships,
    /// Remove a person's relationship to an object: the person's `delete_relationships`.
    DeleteRelationships,
}

impl Action {
    /// The action's name, as the v2 API and messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Identify => "identify",
            Action::Event => "event",
            Action::Delete => "delete",
            Action::Suppress => "suppress",
            Action::Unsuppress => "unsuppress",
            Action::AddDevice => "add_device",
            Action::DeleteDevice => "delete_device",
            Action::Merge => "merge",
            Action::AddRelationships => "add_relationships",
            Action::DeleteRelationships => "delete_relationships",
        }
    }
}

/// What orders an operation and names it in the ledger: operations with equal keys are
/// applied in file order, one after the other; operations with different keys may travel
/// in parallel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key<'a> {
    /// The entity itself: every identify, delete or suppression of the same person.
    Entity(Entity, &'a Identifier),
    /// An event, by its id: events of one person need no order among themselves, and the
    /// ledger remembers them one by one.
    Event(&'a str),
    /// A device, by its token: a token belongs to one device, whoever it is added to, so
    /// every operation on it is applied in file order, and the ledger remembers it by token.
    Device(&'a str),
    /// Every merge: one key for all, so merges are applied strictly in file order (a chain
    /// A<-B, then B<-C, applies as written).
    Merge,
    /// An object: every identify or delete of the same object, in file order.
    Object(&'a ObjectRef),
    /// A relationship between a person and an object: ordered with the person (it travels
    /// on the person's operation), named in the ledger by the pair.
    Relationship(&'a Identifier, &'a ObjectRef),
}

impl Key<'_> {
    /// A 64-bit hash of the key, for the per-key ordering of requests in flight.
    pub fn order_hash(&self) -> u64 {
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        match self {
            Key::Entity(_, id) | Key::Relationship(id, _) => {
                h.update(id.kind.as_str().as_bytes());
                h.update(&[0]);
                h.update(id.value.as_bytes());
            }
            Key::Event(id) => {
                h.update(b"event");
                h.update(&[0]);
                h.update(id.as_bytes());
            }
            Key::Device(token) => {
                h.update(b"device");
                h.update(&[0]);
                h.update(token.as_bytes());
            }
            Key::Merge => h.update(b"merge"),
            Key::Object(o) => {
                h.update(b"object");
                h.update(&[0]);
                h.update(o.type_id.as_bytes());
                h.update(&[0]);
                h.update(o.id.as_bytes());
            }
        }
        h.digest()
    }

    /// A 128-bit hash of the key, for the filter of keys sent earlier in the run.
    pub fn seen_hash(&self) -> u128 {
        match self {
            Key::Entity(_, id) => {
                xxhash_rust::xxh3::xxh3_128_with_seed(id.value.as_bytes(), id.kind as u64)
            }
            Key::Event(id) => xxhash_rust::xxh3::xxh3_128_with_seed(id.as_bytes(), u64::MAX),
            Key::Device(token) => {
                xxhash_rust::xxh3::xxh3_128_with_seed(token.as_bytes(), u64::MAX - 1)
            }
            Key::Merge => xxhash_rust::xxh3::xxh3_128_with_seed(b"merge", u64::MAX - 2),
            Key::Object(o) => object_hash(None, o),
            Key::Relationship(id, o) => object_hash(Some(id), o),
        }
    }
}

/// The second thing an operation names besides its person, for the actions that have one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A device, by its token ([`Action::AddDevice`], [`Action::DeleteDevice`]).
    Device(Box<str>),
    /// The person merged into the operation's person ([`Action::Merge`]).
    Secondary(Identifier),
}

/// The filter hash of an object, or of a person's relationship to it: each part
/// length-prefixed, so that no two keys run together.
fn object_hash(person: Option<&Identifier>, o: &ObjectRef) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::with_seed(u64::MAX - 3);
    let mut part = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    if let Some(p) = person {
        part(p.kind.as_str().as_bytes());
        part(p.value.as_bytes());
    }
    part(o.type_id.as_bytes());
    part(o.id.as_bytes());
    h.digest128()
}

/// A row that passed conversion and validation, ready for a destination: one operation and
/// the row it came from.
#[derive(Clone, Debug)]
pub struct Operation {
    /// Where it came from.
    pub pos: Position,
    /// What it is about.
    pub entity: Entity,
    /// What it does.
    pub action: Action,
    /// Who it is about.
    pub identifier: Identifier,
    /// For an event: its id (a ULID), which orders and names it instead of the person.
    pub event_id: Option<Box<str>>,
    /// For an object: the object (then `identifier` holds its object id, for messages only).
    /// For a relationship: the object the person is related to.
    pub object: Option<Box<ObjectRef>>,
    /// How many attributes the payload sets.
    pub attributes: usize,
    /// The serialized body, written for the destination's API by [`crate::track::PayloadWriter`]:
    /// the v1 body or the v2 batch operation. Emptied once it is packed into a batch.
    pub payload: Vec<u8>,
    /// The row as read.
    pub raw: RawRow,
    /// The hash of the attributes' canonical form, when a ledger is in use.
    pub hash: Option<[u8; 16]>,
    /// Per-attribute hashes ([`crate::preview::AttrHashes`]) with `hash`: what the ledger keeps
    /// so that a preview can name the attributes that changed.
    pub attrs: Option<Box<[u8]>>,
    /// The payload carries `_update` (from `--update-only` or the data): the send never
    /// creates anyone, so its acknowledgement proves nothing and is not recorded.
    pub conditional: bool,
    /// The ledger may hold other values for this entity: they are forgotten (durably)
    /// before this operation is sent, so a send whose outcome is unknown leaves no stale claim.
    pub forget_first: bool,
    /// The device or the secondary person, for the actions that name one.
    pub target: Option<Target>,
}

impl Operation {
    /// The key that orders this operation and names it in the ledger.
    pub fn key(&self) -> Key<'_> {
        match (&self.event_id, &self.target, &self.object, self.entity) {
            (Some(id), _, _, _) => Key::Event(id),
            (None, Some(Target::Device(token)), _, _) => Key::Device(token),
            (None, Some(Target::Secondary(_)), _, _) => Key::Merge,
            (None, None, Some(o), Entity::Object) => Key::Object(o),
            (None, None, Some(o), Entity::Person) => Key::Relationship(&self.identifier, o),
            (None, None, _, entity) => Key::Entity(entity, &self.identifier),
        }
    }

    /// The device token, for a device operation.
    pub fn device_token(&self) -> Option<&str> {
        match &self.target {
            Some(Target::Device(t)) => Some(t),
            _ => None,
        }
    }

    /// The person this operation removes from the workspace, with their devices: the person
    /// of a delete or a suppression, a merge's secondary.
    pub fn person_removed(&self) -> Option<&Identifier> {
        match (self.action, &self.target) {
            (Action::Delete | Action::Suppress, _) => Some(&self.identifier),
            (Action::Merge, Some(Target::Secondary(s))) => Some(s),
            _ => None,
        }
    }

    /// The people whose ledger records this operation makes untrue once sent: its person
    /// (for a merge, the primary, whose attributes change) and a merge's secondary (who is
    /// deleted). None for a device operation: it changes the device, not the person.
    pub fn people_touched(&self) -> Vec<&Identifier> {
        match &self.target {
            Some(Target::Device(_)) => Vec::new(),
            Some(Target::Secondary(s)) => vec![&self.identifier, s],
            None => vec![&self.identifier],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::IdKind;

    #[test]
    fn a_person_is_keyed_by_kind_and_value_and_an_event_by_its_id() {
        let id = |kind, v: &str| Identifier {
            kind,
            value: v.into(),
        };
        let (a, b) = (id(IdKind::Id, "42"), id(IdKind::Email, "42"));
        let ka = Key::Entity(Entity::Person, &a);
        assert_eq!(
            ka.order_hash(),
            Key::Entity(Entity::Person, &a).order_hash()
        );
        assert_ne!(
            ka.order_hash(),
            Key::Entity(Entity::Person, &b).order_hash()
        );
        assert_ne!(ka.seen_hash(), Key::Entity(Entity::Person, &b).seen_hash());
        assert_ne!(ka.order_hash(), Key::Event("42").order_hash());
        assert_ne!(
            Key::Device("42").order_hash(),
            Key::Event("42").order_hash()
        );
        assert_ne!(Key::Device("42").seen_hash(), Key::Event("42").seen_hash());
    }
}
