#!/usr/bin/env python3
"""The source-level layering rules of ARCHITECTURE.md:
- no import cycles between a crate's modules (one module per file), found from `crate::`/`super::` paths;
- the core crate's non-test code uses no file, socket, process, environment, thread or clock.

usage: .ci/layering.py CORE_SRC_DIR CRATE_SRC_DIR...   exits 1 and prints each violation.

A child using its parent module's items is not counted (that is how Rust modules nest); test files and
`#[cfg(test)]` tails are left out, since tests may reach anywhere.
"""
import os,re,sys,itertools
# file-level module graph per crate; edges from `use`/paths crate::a::b, super::x, self::x
def modules(root):
    mods={}
    for dp,_,fs in os.walk(root):
        for f in fs:
            if f.endswith('.rs'):
                p=os.path.join(dp,f); rel=os.path.relpath(p,root)[:-3].split('/')
                if rel[-1] in ('mod','lib','main'): rel=rel[:-1]
                mods[tuple(rel)]=p
    return mods
def resolve(mods,path):
    # longest prefix that is a module
    for i in range(len(path),0,-1):
        if tuple(path[:i]) in mods: return tuple(path[:i])
    return None
def non_test(src):
    src=re.sub(r'//.*','',src)
    cut=src.find('#[cfg(test)]')
    return src[:cut] if cut>=0 else src

IO=re.compile(r'std::(fs|net|process|env)\b|std::thread::(spawn|sleep|Builder)|SystemTime|Instant::now|OffsetDateTime::now')
io_hits=0
for dp,_,fs in os.walk(sys.argv[1]):
    for f in fs:
        if f.endswith('.rs') and not f.endswith('_tests.rs') and f!='test_support.rs':
            p=os.path.join(dp,f)
            for n,line in enumerate(non_test(open(p).read()).split('\n'),1):
                if IO.search(line):
                    io_hits+=1; print(f'{p}:{n}: the core must not do I/O or read clocks: {line.strip()}')
print('core I/O uses:', io_hits)

allc=0
for root in sys.argv[2:]:
    mods=modules(root); edges={m:set() for m in mods}
    for m,p in mods.items():
        src=open(p).read()
        src=re.sub(r'//.*','',src)
        # strip test modules roughly: skip files named *tests*
        if 'tests' in p.split('/')[-1] or p.endswith('test_support.rs'): continue
        cut=src.find('#[cfg(test)]')
        if cut>=0: src=src[:cut]
        is_dir = p.endswith('mod.rs') or p.endswith('lib.rs')
        parent = m if is_dir else m[:-1]
        for mt in re.finditer(r'\b(crate|super)((?:::\w+)+)',src):
            kind,rest=mt.group(1),mt.group(2).split('::')[1:]
            if kind=='crate': path=list(rest)
            else:
                base=list(parent)
                while rest and rest[0]=='super': base=base[:-1]; rest=rest[1:]
                path=base+rest
            # braces: use super::{a, b}
            t=resolve(mods,path)
            if t and t!=m and t!=() : edges[m].add(t)
        for mt in re.finditer(r'\b(crate|super)::\{([^}]*)\}',src):
            kind=mt.group(1)
            base=[] if kind=='crate' else list(parent)
            for item in mt.group(2).split(','):
                item=item.strip().split('::')[0]
                if item:
                    t=resolve(mods,base+[item])
                    if t and t!=m and t!=(): edges[m].add(t)
    # cycles via SCC (tarjan)
    index={};low={};st=[];on=set();sccs=[];c=[0]
    sys.setrecursionlimit(10000)
    def sc(v):
        index[v]=low[v]=c[0];c[0]+=1;st.append(v);on.add(v)
        for w in edges[v]:
            # ignore edges into ancestors (a child using its parent's items is normal)
            if w==v[:len(w)]: continue
            if w not in index: sc(w);low[v]=min(low[v],low[w])
            elif w in on: low[v]=min(low[v],index[w])
        if low[v]==index[v]:
            comp=[]
            while True:
                w=st.pop();on.discard(w);comp.append(w)
                if w==v:break
            if len(comp)>1: sccs.append(comp)
    for v in edges:
        if v not in index: sc(v)
    for comp in sccs:
        allc+=1; print(root, ' <-> '.join('/'.join(x) for x in comp))
print('import cycles:', allc)
sys.exit(1 if allc or io_hits else 0)
