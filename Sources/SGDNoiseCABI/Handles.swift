import SGDNoise
import Synchronization

/// The live handles of the C interface: every handle the library gave out and has not taken back,
/// with its kind. A handle is looked up here *before* anything at its address is read, so a
/// freed handle, a handle of the wrong kind (a simulation passed as an accumulator) or a pointer
/// that never was a handle is `INVALID_ARGUMENT`, never a crash. The only global state of the
/// library besides the per-thread last error; a lookup costs one uncontended lock.
///
/// Limit: after a handle is freed, the allocator may give its address to a new handle of the
/// same kind, which a stale copy of the old pointer would then reach; no check can tell them apart.
private let liveHandles = Mutex<[UInt: ObjectIdentifier]>([:])

/// The C type name of each handle class, for messages.
private func cTypeName(_ kind: ObjectIdentifier) -> String {
    switch kind {
    case ObjectIdentifier(AccumulatorHandle.self): return "sgdnoise_accumulator"
    case ObjectIdentifier(SketchHandle.self): return "sgdnoise_sketch"
    case ObjectIdentifier(SimulationHandle.self): return "sgdnoise_simulation"
    default: return "an unknown kind"
    }
}

enum Handles {
    /// Retains `object` for the C caller, registers it and writes its handle to `out`.
    static func give<T: AnyObject>(_ object: T, to out: UnsafeMutablePointer<OpaquePointer?>) {
        let p = Unmanaged.passRetained(object).toOpaque()
        let key = UInt(bitPattern: p), kind = ObjectIdentifier(T.self)
        liveHandles.withLock { $0[key] = kind }
        out.pointee = OpaquePointer(p)
    }

    /// The object behind a live handle of type `T`. The object is retained under the lock, so a
    /// concurrent free cannot release it during the call.
    static func object<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type, _ name: String) throws(SGDNoiseError) -> T {
        guard let handle else { throw .invalidArgument("\(name) must not be NULL") }
        let key = UInt(bitPattern: UnsafeMutableRawPointer(handle)), kind = ObjectIdentifier(T.self)
        let actual: ObjectIdentifier? = liveHandles.withLock { table in
            let found = table[key]
            if found == kind {
                _ = Unmanaged<T>.fromOpaque(UnsafeRawPointer(bitPattern: key)!).retain()
            }
            return found
        }
        if actual == kind {
            return Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).takeRetainedValue()
        }
        if let actual {
            throw .invalidArgument("\(name) is a handle of \(cTypeName(actual)), not of \(cTypeName(kind))")
        }
        throw .invalidArgument("\(name) is not a live \(cTypeName(kind)) handle (freed, or never created by this library)")
    }

    /// Takes a handle of type `T` back and releases it. NULL, an unknown or already freed
    /// pointer, and a handle of another kind are ignored (nothing to free; never a crash).
    static func free<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type) {
        guard let handle else { return }
        let key = UInt(bitPattern: UnsafeMutableRawPointer(handle)), kind = ObjectIdentifier(T.self)
        let owned = liveHandles.withLock { table -> Bool in
            guard table[key] == kind else { return false }
            table[key] = nil
            return true
        }
        if owned { Unmanaged<T>.fromOpaque(UnsafeRawPointer(handle)).release() }
    }
}
