#!/usr/bin/env python3
"""Checks that a Rust crate's modules import each other without cycles.

    scripts/check-module-cycles.py proxy/src [-v]

Reads every `.rs` file under the source directory, takes the `use crate::…`,
`use super::…` and `crate::…` paths outside `#[cfg(test)] mod tests`, maps
each to the module (file) it names, and reports the strongly connected
components of that graph. A module naming its own ancestor (a child using
its parent's items) is not an edge. `-v` prints every edge. Exits 1 on a
cycle.
"""
import re, os, sys
root = sys.argv[1]
mods = {}
for dp, dn, fn in os.walk(root):
    for f in fn:
        if not f.endswith('.rs'): continue
        rel = os.path.relpath(os.path.join(dp, f), root)[:-3]
        parts = rel.split('/')
        if parts[-1] == 'mod': parts = parts[:-1]
        if parts in (['lib'], ['main']): parts = []
        mods['::'.join(parts)] = os.path.join(dp, f)
def resolve(path):
    # longest existing module prefix
    segs = path.split('::')
    for k in range(len(segs), 0, -1):
        m = '::'.join(segs[:k])
        if m in mods: return m
    return None
edges = {}
for m, p in mods.items():
    src = re.sub(r'//[^\n]*', '', open(p).read())
    src = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', src, flags=re.S)
    cur = m.split('::') if m else []
    refs = []
    for u in re.finditer(r'\buse\s+([^;]+);', src):
        body = u.group(1)
        def expand(prefix, s):
            s = s.strip()
            mm = re.match(r'^([\w:]*?)(::)?\{(.*)\}$', s, re.S)
            if mm:
                pre = mm.group(1)
                inner = mm.group(3)
                depth=0; cur_=''; items=[]
                for ch in inner:
                    if ch=='{': depth+=1
                    if ch=='}': depth-=1
                    if ch==',' and depth==0: items.append(cur_); cur_=''
                    else: cur_+=ch
                items.append(cur_)
                out=[]
                for it in items:
                    if it.strip(): out += expand(prefix + ([pre] if pre else []), it)
                return out
            return ['::'.join(prefix + [s.split(' as ')[0].strip()])]
        refs += expand([], body)
    refs += re.findall(r'\b((?:crate|super)(?:::\w+)+)', src)
    for r in refs:
        segs = r.split('::')
        if segs[0] == 'crate': target = segs[1:]
        elif segs[0] == 'super':
            base = cur[:-1]; segs = segs[1:]
            while segs and segs[0] == 'super': base = base[:-1]; segs = segs[1:]
            target = base + segs
        elif segs[0] == 'self': target = cur + segs[1:]
        else: continue
        t = resolve('::'.join(target))
        if t is None or t == m: continue
        # ignore edges to ancestors (parent modules re-exporting) 
        if m.startswith(t + '::') or t == '': continue
        edges.setdefault(m, set()).add(t)
def sccs():
    index={}; low={}; st=[]; on=set(); res=[]; i=[0]
    def strong(v):
        index[v]=low[v]=i[0]; i[0]+=1; st.append(v); on.add(v)
        for w in edges.get(v,()):
            if w not in index: strong(w); low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],index[w])
        if low[v]==index[v]:
            comp=[]
            while True:
                w=st.pop(); on.discard(w); comp.append(w)
                if w==v: break
            if len(comp)>1: res.append(sorted(comp))
    sys.setrecursionlimit(10000)
    for v in mods:
        if v not in index: strong(v)
    return res
if '-v' in sys.argv:
    for k in sorted(edges): print(k or '<root>', '->', ', '.join(sorted(edges[k])))
c = sccs()
print(f'{root}: {len(mods)} modules, {sum(len(v) for v in edges.values())} edges, cycles: {c if c else "none"}')
sys.exit(1 if c else 0)
