//! An in-memory file namespace: directories of named entries pointing at inodes, open handles,
//! and the POSIX rules for create, rename and remove. [`super::MemoryStorage`] stores plain bytes
//! in it; the simulator's disk stores files with durable and pending layers in the same tree, so
//! both follow one set of namespace rules.
//!
//! Inodes are never freed implicitly: a removed file may still be open, or (in the simulator) still
//! be named by a directory's durable state. The owner calls [`Tree::collect_garbage`] after
//! operations that unlink entries.

use super::{path_components, unknown_file, FileId};
use std::collections::{BTreeMap, BTreeSet};
use std::io;

/// Inode number.
pub type Ino = u64;

/// The root directory's inode.
pub const ROOT: Ino = 0;

/// What an inode holds.
#[derive(Debug, Clone)]
pub enum Node<F> {
    File(F),
    Dir(BTreeMap<String, Ino>),
}

/// A tree of directories and files of type `F`, plus the handles open on its files.
#[derive(Debug, Clone)]
pub struct Tree<F> {
    nodes: BTreeMap<Ino, Node<F>>,
    next_ino: Ino,
    handles: BTreeMap<FileId, Ino>,
    next_handle: u64,
}

impl<F> Default for Tree<F> {
    fn default() -> Self {
        Self::new()
    }
}

fn error(kind: io::ErrorKind, what: &str, path: &str) -> io::Error {
    io::Error::new(kind, format!("{what}: {path:?}"))
}

impl<F> Tree<F> {
    /// An empty tree: just the root directory.
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(ROOT, Node::Dir(BTreeMap::new()));
        Tree {
            nodes,
            next_ino: ROOT + 1,
            handles: BTreeMap::new(),
            next_handle: 1,
        }
    }

    /// The inode a path names. `NotFound` when an entry is missing, `NotADirectory` when a
    /// non-final component is a file.
    pub fn lookup(&self, path: &str) -> io::Result<Ino> {
        let mut ino = ROOT;
        for part in path_components(path)? {
            let Some(Node::Dir(entries)) = self.nodes.get(&ino) else {
                return Err(error(io::ErrorKind::NotADirectory, "not a directory", path));
            };
            ino = *entries
                .get(part)
                .ok_or_else(|| error(io::ErrorKind::NotFound, "no such file or directory", path))?;
        }
        Ok(ino)
    }

    /// The inode of a directory; `NotADirectory` when the path names a file.
    pub fn lookup_dir(&self, path: &str) -> io::Result<Ino> {
        let ino = self.lookup(path)?;
        match self.nodes.get(&ino) {
            Some(Node::Dir(_)) => Ok(ino),
            _ => Err(error(io::ErrorKind::NotADirectory, "not a directory", path)),
        }
    }

    /// The parent directory's inode and the final name of a non-root path.
    fn lookup_parent<'p>(&self, path: &'p str) -> io::Result<(Ino, &'p str)> {
        let parts = path_components(path)?;
        let Some(name) = parts.last() else {
            return Err(error(
                io::ErrorKind::InvalidInput,
                "the root has no parent",
                path,
            ));
        };
        let dir = self.lookup_dir(super::parent(path))?;
        Ok((dir, name))
    }

    /// The entries of a directory inode.
    pub fn entries(&self, dir: Ino) -> Option<&BTreeMap<String, Ino>> {
        match self.nodes.get(&dir) {
            Some(Node::Dir(entries)) => Some(entries),
            _ => None,
        }
    }

    /// The entries of a directory inode, mutably (the simulator replaces them on a crash).
    pub fn entries_mut(&mut self, dir: Ino) -> Option<&mut BTreeMap<String, Ino>> {
        match self.nodes.get_mut(&dir) {
            Some(Node::Dir(entries)) => Some(entries),
            _ => None,
        }
    }

    /// Whether an open handle or a directory entry refers to `ino`. Closing a handle can free
    /// only its own inode, and only when this turns false: owners skip a full garbage
    /// collection otherwise.
    pub fn is_referenced(&self, ino: Ino) -> bool {
        self.handles.values().any(|&open| open == ino)
            || self.nodes.values().any(|node| match node {
                Node::Dir(entries) => entries.values().any(|&named| named == ino),
                Node::File(_) => false,
            })
    }

    /// Every directory inode, in inode order.
    pub fn dir_inos(&self) -> Vec<Ino> {
        let dirs = self
            .nodes
            .iter()
            .filter(|(_, node)| matches!(node, Node::Dir(_)));
        dirs.map(|(ino, _)| *ino).collect()
    }

    /// Every file, in inode order.
    pub fn files_mut(&mut self) -> impl Iterator<Item = (Ino, &mut F)> {
        self.nodes.iter_mut().filter_map(|(ino, node)| match node {
            Node::File(file) => Some((*ino, file)),
            Node::Dir(_) => None,
        })
    }

    fn insert(&mut self, node: Node<F>) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        ino
    }

    fn dir_mut(&mut self, dir: Ino) -> &mut BTreeMap<String, Ino> {
        match self.nodes.get_mut(&dir) {
            Some(Node::Dir(entries)) => entries,
            _ => unreachable!("inode {dir} was checked to be a directory"),
        }
    }

    /// Opens (or creates) a file. Returns the handle and whether the file was created.
    pub fn open(
        &mut self,
        path: &str,
        create: bool,
        new_file: impl FnOnce() -> F,
    ) -> io::Result<(FileId, bool)> {
        let (dir, name) = self.lookup_parent(path)?;
        let existing = self
            .entries(dir)
            .and_then(|entries| entries.get(name))
            .copied();
        let (ino, created) = match existing {
            Some(ino) if matches!(self.nodes.get(&ino), Some(Node::Dir(_))) => {
                return Err(error(io::ErrorKind::IsADirectory, "is a directory", path));
            }
            Some(ino) => (ino, false),
            None if create => {
                let ino = self.insert(Node::File(new_file()));
                self.dir_mut(dir).insert(name.to_owned(), ino);
                (ino, true)
            }
            None => return Err(error(io::ErrorKind::NotFound, "no such file", path)),
        };
        let handle = FileId(self.next_handle);
        self.next_handle += 1;
        self.handles.insert(handle, ino);
        Ok((handle, created))
    }

    /// Releases a handle (the owner then collects garbage: the file may have been removed).
    pub fn close(&mut self, file: FileId) -> io::Result<()> {
        self.handles
            .remove(&file)
            .map(|_| ())
            .ok_or_else(|| unknown_file(file))
    }

    /// Drops every handle (a crashed process holds none).
    pub fn close_all(&mut self) {
        self.handles.clear();
    }

    /// The inode behind an open handle.
    pub fn handle_ino(&self, file: FileId) -> io::Result<Ino> {
        self.handles
            .get(&file)
            .copied()
            .ok_or_else(|| unknown_file(file))
    }

    /// The file behind an open handle.
    pub fn file(&self, file: FileId) -> io::Result<&F> {
        match self.nodes.get(&self.handle_ino(file)?) {
            Some(Node::File(f)) => Ok(f),
            _ => Err(unknown_file(file)),
        }
    }

    /// The file behind an open handle, mutably.
    pub fn file_mut(&mut self, file: FileId) -> io::Result<&mut F> {
        let ino = self.handle_ino(file)?;
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Ok(f),
            _ => Err(unknown_file(file)),
        }
    }

    /// A file by inode (`None` if freed or a directory).
    pub fn file_at_mut(&mut self, ino: Ino) -> Option<&mut F> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Some(f),
            _ => None,
        }
    }

    /// Creates a directory and its missing parents. Returns the directories that were created,
    /// as (parent inode, new inode) pairs.
    pub fn create_dir_all(&mut self, path: &str) -> io::Result<Vec<(Ino, Ino)>> {
        let parts = path_components(path)?;
        let mut created = Vec::new();
        let mut ino = ROOT;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            match self
                .entries(ino)
                .and_then(|entries| entries.get(*part))
                .copied()
            {
                Some(next) if matches!(self.nodes.get(&next), Some(Node::Dir(_))) => ino = next,
                Some(_) if last => {
                    return Err(error(
                        io::ErrorKind::AlreadyExists,
                        "exists and is a file",
                        path,
                    ));
                }
                Some(_) => {
                    return Err(error(io::ErrorKind::NotADirectory, "not a directory", path))
                }
                None => {
                    let next = self.insert(Node::Dir(BTreeMap::new()));
                    self.dir_mut(ino).insert((*part).to_owned(), next);
                    created.push((ino, next));
                    ino = next;
                }
            }
        }
        Ok(created)
    }

    /// Renames with POSIX rules: a file replaces a file, a directory replaces an empty directory,
    /// a directory cannot move below itself. Returns the (old, new) parent directory inodes.
    pub fn rename(&mut self, from: &str, to: &str) -> io::Result<(Ino, Ino)> {
        path_components(to)?;
        let (from_dir, from_name) = self.lookup_parent(from)?;
        let ino = self.lookup(from)?;
        let (to_dir, to_name) = self.lookup_parent(to)?;
        let is_dir = |tree: &Self, ino: Ino| matches!(tree.nodes.get(&ino), Some(Node::Dir(_)));
        if is_dir(self, ino) && to.starts_with(from) && to.as_bytes().get(from.len()) == Some(&b'/')
        {
            return Err(error(
                io::ErrorKind::InvalidInput,
                "cannot move a directory below itself",
                to,
            ));
        }
        if let Some(target) = self
            .entries(to_dir)
            .and_then(|entries| entries.get(to_name))
            .copied()
        {
            if target == ino {
                return Ok((from_dir, to_dir));
            }
            match (is_dir(self, ino), is_dir(self, target)) {
                (false, true) => {
                    return Err(error(io::ErrorKind::IsADirectory, "is a directory", to))
                }
                (true, false) => {
                    return Err(error(io::ErrorKind::NotADirectory, "not a directory", to));
                }
                (true, true) if self.entries(target).is_some_and(|e| !e.is_empty()) => {
                    return Err(error(
                        io::ErrorKind::DirectoryNotEmpty,
                        "directory not empty",
                        to,
                    ));
                }
                _ => {}
            }
        }
        self.dir_mut(from_dir).remove(from_name);
        self.dir_mut(to_dir).insert(to_name.to_owned(), ino);
        Ok((from_dir, to_dir))
    }

    /// Unlinks a file or an empty directory. Returns the parent directory's inode.
    pub fn remove(&mut self, path: &str) -> io::Result<Ino> {
        let (dir, name) = self.lookup_parent(path)?;
        let ino = self.lookup(path)?;
        if self.entries(ino).is_some_and(|entries| !entries.is_empty()) {
            return Err(error(
                io::ErrorKind::DirectoryNotEmpty,
                "directory not empty",
                path,
            ));
        }
        self.dir_mut(dir).remove(name);
        Ok(dir)
    }

    /// Unlinks a directory with everything below it. Returns the parent directory's inode.
    pub fn remove_dir_all(&mut self, path: &str) -> io::Result<Ino> {
        let (dir, name) = self.lookup_parent(path)?;
        self.lookup_dir(path)?;
        self.dir_mut(dir).remove(name);
        Ok(dir)
    }

    /// Names in a directory, sorted.
    pub fn list(&self, path: &str) -> io::Result<Vec<String>> {
        let dir = self.lookup_dir(path)?;
        Ok(self
            .entries(dir)
            .map(|entries| entries.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Frees every inode that is neither reachable from the root, nor open, nor named by the
    /// owner's extra references (`extra(dir)`: more children of a directory, such as its durable
    /// entries in the simulator). Returns the freed inodes.
    pub fn collect_garbage(&mut self, extra: impl Fn(Ino) -> Vec<Ino>) -> Vec<Ino> {
        let mut live = BTreeSet::new();
        let mut stack: Vec<Ino> = vec![ROOT];
        stack.extend(self.handles.values().copied());
        while let Some(ino) = stack.pop() {
            if !live.insert(ino) {
                continue;
            }
            if let Some(Node::Dir(entries)) = self.nodes.get(&ino) {
                stack.extend(entries.values().copied());
                stack.extend(extra(ino));
            }
        }
        let dead: Vec<Ino> = self
            .nodes
            .keys()
            .filter(|ino| !live.contains(ino))
            .copied()
            .collect();
        for ino in &dead {
            self.nodes.remove(ino);
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_file_lives_while_open() {
        let mut tree: Tree<u32> = Tree::new();
        let (handle, created) = tree.open("a", true, || 7).unwrap();
        assert!(created);
        tree.remove("a").unwrap();
        assert!(tree.collect_garbage(|_| Vec::new()).is_empty());
        assert_eq!(*tree.file(handle).unwrap(), 7);
        tree.close(handle).unwrap();
        assert_eq!(tree.collect_garbage(|_| Vec::new()).len(), 1);
    }

    #[test]
    fn directory_cannot_move_below_itself() {
        let mut tree: Tree<u32> = Tree::new();
        tree.create_dir_all("a/b").unwrap();
        let err = tree.rename("a", "a/b/c").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        tree.rename("a", "ab").unwrap();
        assert_eq!(tree.list("").unwrap(), vec!["ab".to_owned()]);
    }
}
