#include "store/catalog_vfs.h"

#include <sqlite3.h>

#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "fmt/format.h"

namespace hart::store {
namespace {

struct ShimVfs {
  sqlite3_vfs vfs;  // first: SQLite hands back a sqlite3_vfs*
  sqlite3_vfs* real;
  Env* env;
  std::string name;
};

struct ShimFile {
  sqlite3_file base;  // first, as SQLite requires
  sqlite3_file* real;
  Env* env;
  std::string* path;
};

ShimFile* Shim(sqlite3_file* f) { return reinterpret_cast<ShimFile*>(f); }
ShimVfs* Vfs(sqlite3_vfs* v) { return reinterpret_cast<ShimVfs*>(v); }

int Fail(const absl::Status& s, int ioerr) {
  return absl::IsResourceExhausted(s) ? SQLITE_FULL : ioerr;
}

int xClose(sqlite3_file* f) {
  ShimFile* s = Shim(f);
  int rc = s->real->pMethods ? s->real->pMethods->xClose(s->real) : SQLITE_OK;
  delete s->path;
  s->path = nullptr;
  return rc;
}
int xRead(sqlite3_file* f, void* b, int n, sqlite3_int64 off) {
  return Shim(f)->real->pMethods->xRead(Shim(f)->real, b, n, off);
}
int xWrite(sqlite3_file* f, const void* b, int n, sqlite3_int64 off) {
  ShimFile* s = Shim(f);
  if (absl::Status st = s->env->LibraryIo(Env::IoOp::kWrite, *s->path); !st.ok())
    return Fail(st, SQLITE_IOERR_WRITE);
  return s->real->pMethods->xWrite(s->real, b, n, off);
}
int xTruncate(sqlite3_file* f, sqlite3_int64 size) {
  ShimFile* s = Shim(f);
  if (absl::Status st = s->env->LibraryIo(Env::IoOp::kTruncate, *s->path); !st.ok())
    return Fail(st, SQLITE_IOERR_TRUNCATE);
  return s->real->pMethods->xTruncate(s->real, size);
}
int xSync(sqlite3_file* f, int flags) {
  ShimFile* s = Shim(f);
  if (absl::Status st = s->env->LibraryIo(Env::IoOp::kSync, *s->path); !st.ok())
    return SQLITE_IOERR_FSYNC;
  return s->real->pMethods->xSync(s->real, flags);
}
int xFileSize(sqlite3_file* f, sqlite3_int64* out) {
  return Shim(f)->real->pMethods->xFileSize(Shim(f)->real, out);
}
int xLock(sqlite3_file* f, int l) { return Shim(f)->real->pMethods->xLock(Shim(f)->real, l); }
int xUnlock(sqlite3_file* f, int l) { return Shim(f)->real->pMethods->xUnlock(Shim(f)->real, l); }
int xCheckReservedLock(sqlite3_file* f, int* out) {
  return Shim(f)->real->pMethods->xCheckReservedLock(Shim(f)->real, out);
}
int xFileControl(sqlite3_file* f, int op, void* arg) {
  return Shim(f)->real->pMethods->xFileControl(Shim(f)->real, op, arg);
}
int xSectorSize(sqlite3_file* f) { return Shim(f)->real->pMethods->xSectorSize(Shim(f)->real); }
int xDeviceCharacteristics(sqlite3_file* f) {
  return Shim(f)->real->pMethods->xDeviceCharacteristics(Shim(f)->real);
}
int xShmMap(sqlite3_file* f, int pg, int sz, int extend, void volatile** out) {
  return Shim(f)->real->pMethods->xShmMap(Shim(f)->real, pg, sz, extend, out);
}
int xShmLock(sqlite3_file* f, int off, int n, int flags) {
  return Shim(f)->real->pMethods->xShmLock(Shim(f)->real, off, n, flags);
}
void xShmBarrier(sqlite3_file* f) { Shim(f)->real->pMethods->xShmBarrier(Shim(f)->real); }
int xShmUnmap(sqlite3_file* f, int del) {
  return Shim(f)->real->pMethods->xShmUnmap(Shim(f)->real, del);
}
int xFetch(sqlite3_file* f, sqlite3_int64 off, int n, void** out) {
  return Shim(f)->real->pMethods->xFetch(Shim(f)->real, off, n, out);
}
int xUnfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return Shim(f)->real->pMethods->xUnfetch(Shim(f)->real, off, p);
}

// Version 3 methods; a real file with an older table gets the shim's table
// cut to its version (SQLite checks iVersion before the newer slots).
const sqlite3_io_methods kMethods = {
    3,           xClose,    xRead,        xWrite,      xTruncate,          xSync,
    xFileSize,   xLock,     xUnlock,      xCheckReservedLock, xFileControl, xSectorSize,
    xDeviceCharacteristics, xShmMap, xShmLock, xShmBarrier, xShmUnmap, xFetch, xUnfetch};
const sqlite3_io_methods kMethods2 = {
    2,           xClose,    xRead,        xWrite,      xTruncate,          xSync,
    xFileSize,   xLock,     xUnlock,      xCheckReservedLock, xFileControl, xSectorSize,
    xDeviceCharacteristics, xShmMap, xShmLock, xShmBarrier, xShmUnmap, nullptr, nullptr};
const sqlite3_io_methods kMethods1 = {
    1,           xClose,    xRead,        xWrite,      xTruncate,          xSync,
    xFileSize,   xLock,     xUnlock,      xCheckReservedLock, xFileControl, xSectorSize,
    xDeviceCharacteristics, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

int xOpen(sqlite3_vfs* v, const char* name, sqlite3_file* f, int flags, int* out_flags) {
  ShimVfs* vfs = Vfs(v);
  ShimFile* s = Shim(f);
  s->base.pMethods = nullptr;
  s->real = reinterpret_cast<sqlite3_file*>(s + 1);
  s->env = vfs->env;
  s->path = nullptr;
  int rc = vfs->real->xOpen(vfs->real, name, s->real, flags, out_flags);
  if (s->real->pMethods) {
    s->path = new std::string(name ? name : "(temp)");
    int ver = s->real->pMethods->iVersion;
    s->base.pMethods = ver >= 3 ? &kMethods : ver == 2 ? &kMethods2 : &kMethods1;
  }
  return rc;
}
int xDelete(sqlite3_vfs* v, const char* name, int sync_dir) {
  ShimVfs* vfs = Vfs(v);
  if (absl::Status st = vfs->env->LibraryIo(Env::IoOp::kDelete, name ? name : ""); !st.ok())
    return SQLITE_IOERR_DELETE;
  return vfs->real->xDelete(vfs->real, name, sync_dir);
}
int xAccess(sqlite3_vfs* v, const char* name, int flags, int* out) {
  return Vfs(v)->real->xAccess(Vfs(v)->real, name, flags, out);
}
int xFullPathname(sqlite3_vfs* v, const char* name, int n, char* out) {
  return Vfs(v)->real->xFullPathname(Vfs(v)->real, name, n, out);
}
void* xDlOpen(sqlite3_vfs* v, const char* name) { return Vfs(v)->real->xDlOpen(Vfs(v)->real, name); }
void xDlError(sqlite3_vfs* v, int n, char* out) { Vfs(v)->real->xDlError(Vfs(v)->real, n, out); }
void (*xDlSym(sqlite3_vfs* v, void* h, const char* sym))(void) {
  return Vfs(v)->real->xDlSym(Vfs(v)->real, h, sym);
}
void xDlClose(sqlite3_vfs* v, void* h) { Vfs(v)->real->xDlClose(Vfs(v)->real, h); }
int xRandomness(sqlite3_vfs* v, int n, char* out) {
  return Vfs(v)->real->xRandomness(Vfs(v)->real, n, out);
}
int xSleep(sqlite3_vfs* v, int us) { return Vfs(v)->real->xSleep(Vfs(v)->real, us); }
int xCurrentTime(sqlite3_vfs* v, double* out) {
  return Vfs(v)->real->xCurrentTime(Vfs(v)->real, out);
}
int xGetLastError(sqlite3_vfs* v, int n, char* out) {
  return Vfs(v)->real->xGetLastError(Vfs(v)->real, n, out);
}
int xCurrentTimeInt64(sqlite3_vfs* v, sqlite3_int64* out) {
  return Vfs(v)->real->xCurrentTimeInt64(Vfs(v)->real, out);
}
int xSetSystemCall(sqlite3_vfs* v, const char* name, sqlite3_syscall_ptr p) {
  return Vfs(v)->real->xSetSystemCall(Vfs(v)->real, name, p);
}
sqlite3_syscall_ptr xGetSystemCall(sqlite3_vfs* v, const char* name) {
  return Vfs(v)->real->xGetSystemCall(Vfs(v)->real, name);
}
const char* xNextSystemCall(sqlite3_vfs* v, const char* name) {
  return Vfs(v)->real->xNextSystemCall(Vfs(v)->real, name);
}

}  // namespace

absl::StatusOr<std::string> CatalogVfsFor(Env* env) {
  if (!env || !env->InterceptsLibraryIo()) return std::string();
  static std::mutex mu;
  static auto* shims = new std::map<Env*, std::unique_ptr<ShimVfs>>();
  std::lock_guard<std::mutex> l(mu);
  if (auto it = shims->find(env); it != shims->end()) return it->second->name;
  sqlite3_vfs* real = sqlite3_vfs_find(nullptr);
  if (!real) return absl::InternalError("SQLite has no default VFS");
  auto shim = std::make_unique<ShimVfs>();
  shim->real = real;
  shim->env = env;
  shim->name = fmt::format("hart-env-{}", static_cast<const void*>(env));
  sqlite3_vfs& v = shim->vfs;
  std::memset(&v, 0, sizeof v);
  v.iVersion = 3;
  v.szOsFile = static_cast<int>(sizeof(ShimFile)) + real->szOsFile;
  v.mxPathname = real->mxPathname;
  v.zName = shim->name.c_str();
  v.xOpen = xOpen;
  v.xDelete = xDelete;
  v.xAccess = xAccess;
  v.xFullPathname = xFullPathname;
  v.xDlOpen = xDlOpen;
  v.xDlError = xDlError;
  v.xDlSym = xDlSym;
  v.xDlClose = xDlClose;
  v.xRandomness = xRandomness;
  v.xSleep = xSleep;
  v.xCurrentTime = xCurrentTime;
  v.xGetLastError = xGetLastError;
  v.xCurrentTimeInt64 = xCurrentTimeInt64;
  v.xSetSystemCall = xSetSystemCall;
  v.xGetSystemCall = xGetSystemCall;
  v.xNextSystemCall = xNextSystemCall;
  if (int rc = sqlite3_vfs_register(&v, /*makeDflt=*/0); rc != SQLITE_OK)
    return absl::InternalError(fmt::format("register SQLite VFS {}: {}", shim->name, sqlite3_errstr(rc)));
  std::string name = shim->name;
  (*shims)[env] = std::move(shim);
  return name;
}

}  // namespace hart::store
