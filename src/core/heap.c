/*
 * pa_heap: free blocks in an address-ordered treap, allocated blocks in a
 * hash table.
 *
 * Free blocks are ordered by address (binary search tree) and by a random
 * priority (heap order), which keeps the expected depth logarithmic.
 * `max_free` caches the largest free block in a node's subtree, so first fit
 * descends one path: left while the left subtree can hold the request, then
 * the node itself, then right.  Allocated blocks never enter the tree: an
 * open-addressing table maps each one's start to its size, so freeing finds
 * a block in O(1) and the tree stays as small as the fragmentation.
 */
#include "heap.h"

#include <errno.h>
#include <stdlib.h>

/* A free block. */
typedef struct node {
    uint64_t addr;
    uint64_t size;
    uint64_t max_free;      /* largest block in this subtree */
    struct node *left;
    struct node *right;
    uint32_t prio;
} node;

/* An allocated block; size 0 marks an empty slot. */
typedef struct slot {
    uint64_t addr;
    uint64_t size;
} slot;

/* Nodes come from chunks and are recycled through a free list. */
#define NODES_PER_CHUNK 1024

typedef struct chunk {
    struct chunk *next;
    node nodes[NODES_PER_CHUNK];
} chunk;

struct pa_heap {
    uint64_t base;
    uint64_t size;
    uint64_t granule;
    node *root;             /* free blocks */
    node *spare;            /* unused nodes, linked through `right` */
    chunk *chunks;
    uint64_t nodes;         /* nodes in all chunks */
    uint32_t rng;
    slot *table;            /* allocated blocks, linear probing */
    uint64_t table_mask;    /* capacity - 1; capacity is a power of two */
    unsigned table_shift;   /* 64 - log2(capacity) */
    uint64_t used;
    uint64_t blocks;
    uint64_t free_blocks;
    uint64_t peak_used;
    uint64_t failed;
};

static int
is_pow2(uint64_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

static uint64_t
max3(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t m = a > b ? a : b;
    return m > c ? m : c;
}

static void
update(node *t)
{
    t->max_free = max3(t->size,
                       t->left ? t->left->max_free : 0,
                       t->right ? t->right->max_free : 0);
}

static uint32_t
next_prio(pa_heap *h)
{
    /* xorshift32: priorities only need to be unrelated to addresses. */
    uint32_t x = h->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    h->rng = x;
    return x;
}

/* Adds a chunk of nodes; 0 or -ENOMEM. */
static int
grow_nodes(pa_heap *h)
{
    chunk *c = malloc(sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    c->next = h->chunks;
    h->chunks = c;
    for (int i = NODES_PER_CHUNK - 1; i >= 0; i--) {
        c->nodes[i].right = h->spare;
        h->spare = &c->nodes[i];
    }
    h->nodes += NODES_PER_CHUNK;
    return 0;
}

/* A node from the spare list, which reserve() keeps from running dry. */
static node *
node_new(pa_heap *h, uint64_t addr, uint64_t size)
{
    node *n = h->spare;
    h->spare = n->right;
    n->addr = addr;
    n->size = size;
    n->left = n->right = NULL;
    n->prio = next_prio(h);
    update(n);
    return n;
}

static void
node_release(pa_heap *h, node *n)
{
    n->left = NULL;
    n->right = h->spare;
    h->spare = n;
}

/* Joins two treaps where every address in a is below every one in b. */
static node *
merge(node *a, node *b)
{
    if (a == NULL) {
        return b;
    }
    if (b == NULL) {
        return a;
    }
    if (a->prio > b->prio) {
        a->right = merge(a->right, b);
        update(a);
        return a;
    }
    b->left = merge(a, b->left);
    update(b);
    return b;
}

/* Splits t into addresses < key (*l) and >= key (*r). */
static void
split(node *t, uint64_t key, node **l, node **r)
{
    if (t == NULL) {
        *l = *r = NULL;
        return;
    }
    if (t->addr < key) {
        split(t->right, key, &t->right, r);
        update(t);
        *l = t;
    }
    else {
        split(t->left, key, l, &t->left);
        update(t);
        *r = t;
    }
}

/* Inserts n (whose address is not in the tree); returns the new root. */
static node *
insert(node *t, node *n)
{
    if (t == NULL) {
        return n;
    }
    if (n->prio > t->prio) {
        split(t, n->addr, &n->left, &n->right);
        update(n);
        return n;
    }
    if (n->addr < t->addr) {
        t->left = insert(t->left, n);
    }
    else {
        t->right = insert(t->right, n);
    }
    update(t);
    return t;
}

/* Removes the node at addr (which must exist); returns the new root. */
static node *
erase(pa_heap *h, node *t, uint64_t addr)
{
    if (t->addr == addr) {
        node *joined = merge(t->left, t->right);
        node_release(h, t);
        return joined;
    }
    if (addr < t->addr) {
        t->left = erase(h, t->left, addr);
    }
    else {
        t->right = erase(h, t->right, addr);
    }
    update(t);
    return t;
}

/* Recomputes max_free on the path to addr after that node changed.  A
 * node's address may change as long as it keeps its place in the order. */
static void
refresh(node *t, uint64_t addr)
{
    if (t->addr != addr) {
        refresh(addr < t->addr ? t->left : t->right, addr);
    }
    update(t);
}

/* The free block with the highest address <= key, or NULL. */
static node *
find_le(node *t, uint64_t key)
{
    node *best = NULL;
    while (t != NULL) {
        if (t->addr <= key) {
            best = t;
            t = t->right;
        }
        else {
            t = t->left;
        }
    }
    return best;
}

/*
 * Where a block of `size` aligned to `align` would start inside free block
 * t; *ok says whether it fits there and ends at or below limit.
 */
static uint64_t
place(const node *t, uint64_t size, uint64_t align, uint64_t limit, int *ok)
{
    uint64_t start = (t->addr + (align - 1)) & ~(align - 1);
    *ok = start >= t->addr                          /* no wrap */
          && t->size >= size
          && start - t->addr <= t->size - size      /* fits after padding */
          && start <= limit && limit - start >= size;
    return start;
}

/* Lowest-addressed free block that can hold the request, or NULL. */
static node *
fit(node *t, uint64_t size, uint64_t align, uint64_t limit)
{
    while (t != NULL && t->max_free >= size) {
        node *found = fit(t->left, size, align, limit);
        if (found != NULL) {
            return found;
        }
        int ok;
        place(t, size, align, limit, &ok);
        if (ok) {
            return t;
        }
        /* Everything to the right starts above t: give up past the limit. */
        if (t->addr >= limit || limit - t->addr < size) {
            return NULL;
        }
        t = t->right;
    }
    return NULL;
}

/* ---- the table of allocated blocks ---- */

static uint64_t
slot_of(const pa_heap *h, uint64_t addr)
{
    return ((addr / h->granule) * 0x9E3779B97F4A7C15ull) >> h->table_shift;
}

/* The slot holding addr, or the empty slot where it would go. */
static slot *
table_probe(const pa_heap *h, uint64_t addr)
{
    uint64_t i = slot_of(h, addr);
    while (h->table[i].size != 0 && h->table[i].addr != addr) {
        i = (i + 1) & h->table_mask;
    }
    return &h->table[i];
}

static void
table_put(pa_heap *h, uint64_t addr, uint64_t size)
{
    slot *s = table_probe(h, addr);
    s->addr = addr;
    s->size = size;
}

/* Removes addr's entry and returns its size, or 0 if there is none. */
static uint64_t
table_take(pa_heap *h, uint64_t addr)
{
    slot *s = table_probe(h, addr);
    uint64_t size = s->size;
    if (size == 0) {
        return 0;
    }
    /* Backward-shift deletion: later entries of the cluster move up, so
     * lookups never need tombstones. */
    uint64_t hole = (uint64_t)(s - h->table), i = hole;
    for (;;) {
        i = (i + 1) & h->table_mask;
        if (h->table[i].size == 0) {
            break;
        }
        uint64_t home = slot_of(h, h->table[i].addr);
        /* Move entry i into the hole unless its home lies in (hole, i]. */
        if (((i - home) & h->table_mask) >= ((i - hole) & h->table_mask)) {
            h->table[hole] = h->table[i];
            hole = i;
        }
    }
    h->table[hole].size = 0;
    return size;
}

/* Resizes the table to `capacity` slots (a power of two); 0 or -ENOMEM. */
static int
table_resize(pa_heap *h, uint64_t capacity)
{
    slot *old = h->table;
    uint64_t old_capacity = old == NULL ? 0 : h->table_mask + 1;
    slot *table = calloc((size_t)capacity, sizeof(slot));
    if (table == NULL) {
        return -ENOMEM;
    }
    unsigned bits = 0;
    while ((1ull << bits) < capacity) {
        bits++;
    }
    h->table = table;
    h->table_mask = capacity - 1;
    h->table_shift = 64 - bits;
    for (uint64_t i = 0; i < old_capacity; i++) {
        if (old[i].size != 0) {
            table_put(h, old[i].addr, old[i].size);
        }
    }
    free(old);
    return 0;
}

/*
 * Makes room for one more allocated block: a table slot at load <= 1/2,
 * and nodes for every free block there could then be (blocks + 1), plus
 * two for the split in progress.  So pa_heap_free never needs memory.
 */
static int
reserve(pa_heap *h)
{
    if (2 * (h->blocks + 1) > h->table_mask + 1) {
        int rc = table_resize(h, 2 * (h->table_mask + 1));
        if (rc != 0) {
            return rc;
        }
    }
    while (h->nodes < h->blocks + 4) {
        int rc = grow_nodes(h);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- the interface ---- */

int
pa_heap_create(uint64_t base, uint64_t size, uint64_t granule, pa_heap **out)
{
    if (!is_pow2(granule) || size == 0 || base % granule != 0
            || size % granule != 0 || base + size < base) {
        return -EINVAL;
    }
    pa_heap *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return -ENOMEM;
    }
    h->base = base;
    h->size = size;
    h->granule = granule;
    h->rng = 0x9E3779B9u ^ (uint32_t)(base >> 12) ^ (uint32_t)size;
    if (h->rng == 0) {
        h->rng = 1;
    }
    if (table_resize(h, 64) != 0 || reserve(h) != 0) {
        pa_heap_destroy(h);
        return -ENOMEM;
    }
    h->root = node_new(h, base, size);
    h->free_blocks = 1;
    *out = h;
    return 0;
}

void
pa_heap_destroy(pa_heap *h)
{
    if (h == NULL) {
        return;
    }
    while (h->chunks != NULL) {
        chunk *next = h->chunks->next;
        free(h->chunks);
        h->chunks = next;
    }
    free(h->table);
    free(h);
}

uint64_t
pa_heap_granule(const pa_heap *h)
{
    return h->granule;
}

int
pa_heap_alloc(pa_heap *h, uint64_t size, uint64_t align, uint64_t limit,
              uint64_t *addr)
{
    if (size == 0 || (align != 0 && !is_pow2(align))) {
        return -EINVAL;
    }
    if (align < h->granule) {
        align = h->granule;
    }
    if (size > h->size) {
        h->failed++;
        return -ENOMEM;
    }
    size = (size + h->granule - 1) & ~(h->granule - 1);
    if (limit == 0) {
        limit = UINT64_MAX;
    }
    node *n = fit(h->root, size, align, limit);
    if (n == NULL) {
        h->failed++;
        return -ENOMEM;
    }
    if (reserve(h) != 0) {
        return -ENOMEM;
    }
    int ok;
    uint64_t start = place(n, size, align, limit, &ok);
    uint64_t front = start - n->addr;
    uint64_t tail = n->size - front - size;

    if (front == 0 && tail == 0) {
        h->root = erase(h, h->root, n->addr);
        h->free_blocks--;
    }
    else if (front == 0) {
        n->addr = start + size;     /* the block keeps its place in order */
        n->size = tail;
        refresh(h->root, n->addr);
    }
    else {
        n->size = front;
        refresh(h->root, n->addr);
        if (tail != 0) {
            h->root = insert(h->root, node_new(h, start + size, tail));
            h->free_blocks++;
        }
    }
    table_put(h, start, size);
    h->used += size;
    h->blocks++;
    if (h->used > h->peak_used) {
        h->peak_used = h->used;
    }
    *addr = start;
    return 0;
}

int
pa_heap_free(pa_heap *h, uint64_t addr)
{
    uint64_t size = table_take(h, addr);
    if (size == 0) {
        return -EINVAL;
    }
    uint64_t end = addr + size;
    /* One descent finds the free neighbours on both sides. */
    node *pred = NULL, *succ = NULL;
    for (node *t = h->root; t != NULL;) {
        if (t->addr < addr) {
            pred = t;
            t = t->right;
        }
        else {
            succ = t;
            t = t->left;
        }
    }
    int join_pred = pred != NULL && pred->addr + pred->size == addr;
    int join_succ = succ != NULL && succ->addr == end;
    if (join_pred && join_succ) {
        pred->size += size + succ->size;
        h->root = erase(h, h->root, succ->addr);
        refresh(h->root, pred->addr);
        h->free_blocks--;
    }
    else if (join_pred) {
        pred->size += size;
        refresh(h->root, pred->addr);
    }
    else if (join_succ) {
        succ->addr = addr;          /* keeps its place in order */
        succ->size += size;
        refresh(h->root, succ->addr);
    }
    else {
        h->root = insert(h->root, node_new(h, addr, size));
        h->free_blocks++;
    }
    h->used -= size;
    h->blocks--;
    return 0;
}

int
pa_heap_find(const pa_heap *h, uint64_t addr, uint64_t *start, uint64_t *size)
{
    if (addr < h->base || addr - h->base >= h->size) {
        return -ENOENT;
    }
    /* Allocated blocks tile the gap after the free block below addr; walk
     * back one granule at a time to the start of the one holding addr.
     * O(that block's size / granule): this serves device-side access in
     * tests, not the allocation path. */
    const node *below = find_le(h->root, addr);
    uint64_t floor = below != NULL ? below->addr + below->size : h->base;
    if (below != NULL && addr < floor) {
        return -ENOENT;
    }
    for (uint64_t s = addr & ~(h->granule - 1);; s -= h->granule) {
        const slot *e = table_probe(h, s);
        if (e->size != 0) {
            if (addr - s >= e->size) {
                return -ENOENT;
            }
            *start = s;
            *size = e->size;
            return 0;
        }
        if (s <= floor) {
            return -ENOENT;
        }
    }
}

void
pa_heap_get_stats(const pa_heap *h, pa_heap_stats *out)
{
    out->total = h->size;
    out->used = h->used;
    out->free = h->size - h->used;
    out->largest_free = h->root != NULL ? h->root->max_free : 0;
    out->blocks = h->blocks;
    out->free_blocks = h->free_blocks;
    out->peak_used = h->peak_used;
    out->failed = h->failed;
}

typedef struct walk {
    slot *free_list;        /* free blocks in address order */
    uint64_t n;
} walk;

/* In-order check of the free tree; collects its blocks.  0 or a code. */
static int
check_tree(const pa_heap *h, const node *t, walk *w)
{
    if (t == NULL) {
        return 0;
    }
    if ((t->left && t->left->prio > t->prio)
            || (t->right && t->right->prio > t->prio)) {
        return -1;                          /* heap order */
    }
    int rc = check_tree(h, t->left, w);
    if (rc != 0) {
        return rc;
    }
    if (t->size == 0 || t->size % h->granule != 0
            || t->addr % h->granule != 0) {
        return -2;                          /* granules */
    }
    if (t->max_free != max3(t->size, t->left ? t->left->max_free : 0,
                            t->right ? t->right->max_free : 0)) {
        return -4;                          /* subtree maximum */
    }
    w->free_list[w->n++] = (slot){t->addr, t->size};
    return check_tree(h, t->right, w);
}

static int
by_addr(const void *a, const void *b)
{
    uint64_t x = ((const slot *)a)->addr, y = ((const slot *)b)->addr;
    return (x > y) - (x < y);
}

int
pa_heap_check(const pa_heap *h)
{
    walk w = {malloc((size_t)(h->free_blocks + 1) * sizeof(slot)), 0};
    slot *used = malloc((size_t)(h->blocks + 1) * sizeof(slot));
    int rc = 0;
    if (w.free_list == NULL || used == NULL) {
        rc = -7;                            /* no memory to check with */
        goto done;
    }
    if ((rc = check_tree(h, h->root, &w)) != 0) {
        goto done;
    }
    uint64_t n_used = 0, used_bytes = 0;
    for (uint64_t i = 0; i <= h->table_mask; i++) {
        if (h->table[i].size != 0) {
            if (n_used == h->blocks) {
                rc = -6;                    /* more entries than blocks */
                goto done;
            }
            used[n_used++] = h->table[i];
            used_bytes += h->table[i].size;
        }
    }
    if (w.n != h->free_blocks || n_used != h->blocks
            || used_bytes != h->used || h->used > h->peak_used) {
        rc = -6;                            /* counters */
        goto done;
    }
    qsort(used, (size_t)n_used, sizeof(slot), by_addr);
    /* Free and allocated blocks, merged in address order, tile the range
     * with no two free blocks touching. */
    uint64_t next = h->base, f = 0, u = 0;
    int prev_free = 0;
    while (f < w.n || u < n_used) {
        int take_free = u == n_used
                        || (f < w.n && w.free_list[f].addr < used[u].addr);
        slot b = take_free ? w.free_list[f++] : used[u++];
        if (b.addr != next || b.size % h->granule != 0) {
            rc = -2;                        /* tiling */
            goto done;
        }
        if (take_free && prev_free) {
            rc = -3;                        /* uncoalesced neighbours */
            goto done;
        }
        prev_free = take_free;
        next = b.addr + b.size;
    }
    if (next != h->base + h->size) {
        rc = -5;                            /* range not covered */
    }
done:
    free(w.free_list);
    free(used);
    return rc;
}
