// A browser profile's IndexedDB (runtime_host/profiles.py). When a run saves its profile,
// `dumpIndexedDB()` reads every database of a page's origin in the host's isolated world;
// when a later run loads it, `seedIndexedDB(databases)` puts them back from the page's
// profile seed script, before the page's own scripts run. The seed opens each database
// synchronously, so a page's own `indexedDB.open` of it waits in the same queue until the
// data is in. Values are structured clones: they travel as JSON, with tagged objects for
// what JSON cannot hold (dates, binary data, blobs, maps, sets, big integers, NaN…).

const TAG = "$bctrl";
const MAX_DEPTH = 100;
const VIEWS = [
  "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
  "Int32Array", "Uint32Array", "Float32Array", "Float64Array", "BigInt64Array",
  "BigUint64Array", "DataView",
];

function toBase64(bytes) {
  let text = "";
  for (let at = 0; at < bytes.length; at += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(at, at + 0x8000));
  }
  return btoa(text);
}

function fromBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let at = 0; at < raw.length; at++) bytes[at] = raw.charCodeAt(at);
  return bytes;
}

async function encodeValue(value, depth = 0) {
  if (depth > MAX_DEPTH) throw new Error("a value nested too deep to keep");
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    if (Number.isFinite(value) && !Object.is(value, -0)) return value;
    return { [TAG]: "number", v: Object.is(value, -0) ? "-0" : String(value) };
  }
  if (value === undefined) return { [TAG]: "undefined" };
  if (typeof value === "bigint") return { [TAG]: "bigint", v: value.toString() };
  const next = (item) => encodeValue(item, depth + 1);
  if (Array.isArray(value)) {
    const items = [];
    for (let at = 0; at < value.length; at++) items.push(await next(value[at]));
    return items;
  }
  if (value instanceof Date) return { [TAG]: "date", v: String(value.getTime()) };
  if (value instanceof RegExp) return { [TAG]: "regexp", source: value.source, flags: value.flags };
  if (value instanceof ArrayBuffer) return { [TAG]: "buffer", v: toBase64(new Uint8Array(value)) };
  if (ArrayBuffer.isView(value)) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return { [TAG]: "view", type: value.constructor.name, v: toBase64(bytes) };
  }
  if (value instanceof Blob) {
    const blob = { [TAG]: "blob", type: value.type, v: toBase64(new Uint8Array(await value.arrayBuffer())) };
    if (value instanceof File) Object.assign(blob, { name: value.name, lastModified: value.lastModified });
    return blob;
  }
  if (value instanceof Map) {
    const entries = [];
    for (const [key, item] of value) entries.push([await next(key), await next(item)]);
    return { [TAG]: "map", v: entries };
  }
  if (value instanceof Set) {
    const items = [];
    for (const item of value) items.push(await next(item));
    return { [TAG]: "set", v: items };
  }
  if (typeof value === "object") {
    const fields = {};
    for (const key of Object.keys(value)) fields[key] = await next(value[key]);
    return Object.prototype.hasOwnProperty.call(value, TAG) ? { [TAG]: "object", v: fields } : fields;
  }
  throw new Error(`a ${typeof value} cannot be kept`);
}

function decodeFields(fields) {
  const value = {};
  for (const key of Object.keys(fields)) {
    Object.defineProperty(value, key, {
      value: decodeValue(fields[key]), enumerable: true, writable: true, configurable: true,
    });
  }
  return value;
}

function decodeValue(value) {
  if (Array.isArray(value)) return value.map(decodeValue);
  if (value === null || typeof value !== "object") return value;
  if (!Object.prototype.hasOwnProperty.call(value, TAG)) return decodeFields(value);
  switch (value[TAG]) {
    case "number": return Number(value.v);
    case "undefined": return undefined;
    case "bigint": return BigInt(value.v);
    case "date": return new Date(Number(value.v));
    case "regexp": return new RegExp(value.source, value.flags);
    case "buffer": return fromBase64(value.v).buffer;
    case "view": {
      const View = VIEWS.includes(value.type) ? globalThis[value.type] : Uint8Array;
      return new View(fromBase64(value.v).buffer);
    }
    case "blob": {
      const bytes = fromBase64(value.v);
      return value.name === undefined
        ? new Blob([bytes], { type: value.type })
        : new File([bytes], value.name, { type: value.type, lastModified: value.lastModified });
    }
    case "map": return new Map(value.v.map(([key, item]) => [decodeValue(key), decodeValue(item)]));
    case "set": return new Set(value.v.map(decodeValue));
    case "object": return decodeFields(value.v);
    default: throw new Error(`an unknown kept value ${value[TAG]}`);
  }
}

function settled(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function dumpDatabase(name) {
  const opening = indexedDB.open(name);
  // A database deleted since it was listed is not made again by reading it.
  opening.onupgradeneeded = () => opening.transaction.abort();
  const db = await settled(opening);
  try {
    const stores = [];
    for (const storeName of db.objectStoreNames) {
      const store = db.transaction(storeName, "readonly").objectStore(storeName);
      // What the store is, read while its transaction is live; its records after.
      const kept = {
        name: storeName,
        keyPath: store.keyPath,
        autoIncrement: store.autoIncrement,
        indexes: Array.from(store.indexNames, (indexName) => {
          const index = store.index(indexName);
          return { name: indexName, keyPath: index.keyPath, unique: index.unique, multiEntry: index.multiEntry };
        }),
        records: [],
      };
      const [keys, values] = await Promise.all([settled(store.getAllKeys()), settled(store.getAll())]);
      for (let at = 0; at < keys.length; at++) {
        kept.records.push([await encodeValue(keys[at]), await encodeValue(values[at])]);
      }
      stores.push(kept);
    }
    return { name, version: db.version, stores };
  } finally {
    db.close();
  }
}

// Every database of this page's origin; one that cannot be read is left out and named.
async function dumpIndexedDB() {
  const databases = [];
  const failed = [];
  for (const { name } of await indexedDB.databases()) {
    try {
      databases.push(await dumpDatabase(name));
    } catch (error) {
      failed.push(`${name}: ${error && error.message}`);
    }
  }
  return { databases, failed };
}

// Makes each kept database that this origin does not have yet, with its data, inside the
// open request's upgrade so that nobody sees it half made.
function seedIndexedDB(databases) {
  for (const kept of databases) {
    const opening = indexedDB.open(kept.name, kept.version);
    opening.onupgradeneeded = (event) => {
      // A database the page made first at an older version is the page's to upgrade.
      if (event.oldVersion !== 0) return opening.transaction.abort();
      const db = opening.result;
      for (const store of kept.stores) {
        const made = db.createObjectStore(store.name, { keyPath: store.keyPath, autoIncrement: store.autoIncrement });
        for (const index of store.indexes) {
          made.createIndex(index.name, index.keyPath, { unique: index.unique, multiEntry: index.multiEntry });
        }
        for (const [key, value] of store.records) {
          if (store.keyPath === null) made.put(decodeValue(value), decodeValue(key));
          else made.put(decodeValue(value));
        }
      }
    };
    opening.onsuccess = () => opening.result.close();
    opening.onerror = (event) => event.preventDefault();
  }
}
