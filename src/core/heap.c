/*
 * pa_heap: address-ordered treap of blocks that tile the managed range.
 *
 * Each node is one block, free or allocated.  Nodes are ordered by address
 * (binary search tree) and by a random priority (heap order), which keeps
 * the expected depth logarithmic.  `max_free` caches the largest free block
 * in a node's subtree, so first-fit descends one path: left while the left
 * subtree can hold the request, then the node itself, then right.
 */
#include "heap.h"

#include <errno.h>
#include <stdlib.h>

typedef struct node {
    uint64_t addr;
    uint64_t size;
    uint64_t max_free;      /* largest free block in this subtree */
    struct node *left;
    struct node *right;
    uint32_t prio;
    uint8_t is_free;
} node;

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
    node *root;
    node *spare;            /* free list of nodes, linked through `right` */
    chunk *chunks;
    uint32_t rng;
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
    t->max_free = max3(t->is_free ? t->size : 0,
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

static node *
node_new(pa_heap *h, uint64_t addr, uint64_t size, int is_free)
{
    node *n = h->spare;
    if (n == NULL) {
        chunk *c = malloc(sizeof(*c));
        if (c == NULL) {
            return NULL;
        }
        c->next = h->chunks;
        h->chunks = c;
        for (int i = NODES_PER_CHUNK - 1; i >= 0; i--) {
            c->nodes[i].right = h->spare;
            h->spare = &c->nodes[i];
        }
        n = h->spare;
    }
    h->spare = n->right;
    n->addr = addr;
    n->size = size;
    n->is_free = (uint8_t)is_free;
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

/* Recomputes max_free on the path to addr after that node changed. */
static void
refresh(node *t, uint64_t addr)
{
    if (t->addr != addr) {
        refresh(addr < t->addr ? t->left : t->right, addr);
    }
    update(t);
}

/* The node with the highest address <= key, or NULL. */
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
 * Where a block of `size` aligned to `align` would start inside free node
 * t, or 0 with *ok cleared if it does not fit there below limit.
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

/* Lowest-addressed free node that can hold the request, or NULL. */
static node *
fit(node *t, uint64_t size, uint64_t align, uint64_t limit)
{
    while (t != NULL && t->max_free >= size) {
        node *found = fit(t->left, size, align, limit);
        if (found != NULL) {
            return found;
        }
        if (t->is_free) {
            int ok;
            place(t, size, align, limit, &ok);
            if (ok) {
                return t;
            }
        }
        /* Everything to the right starts above t: give up past the limit. */
        if (t->addr >= limit || limit - t->addr < size) {
            return NULL;
        }
        t = t->right;
    }
    return NULL;
}

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
    h->root = node_new(h, base, size, 1);
    if (h->root == NULL) {
        free(h);
        return -ENOMEM;
    }
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
    int ok;
    uint64_t start = place(n, size, align, limit, &ok);
    uint64_t front = start - n->addr;
    uint64_t tail = n->size - front - size;

    /* Take every node needed before changing the tree, so failure is clean. */
    node *used_node = NULL, *tail_node = NULL;
    if (front != 0 && (used_node = node_new(h, start, size, 0)) == NULL) {
        return -ENOMEM;
    }
    if (tail != 0 && (tail_node = node_new(h, start + size, tail, 1)) == NULL) {
        if (used_node != NULL) {
            node_release(h, used_node);
        }
        return -ENOMEM;
    }

    if (front == 0) {
        n->is_free = 0;
        n->size = size;
        h->free_blocks--;
    }
    else {
        n->size = front;    /* stays free */
    }
    refresh(h->root, n->addr);
    if (used_node != NULL) {
        h->root = insert(h->root, used_node);
    }
    if (tail_node != NULL) {
        h->root = insert(h->root, tail_node);
        h->free_blocks++;
    }

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
    node *n = find_le(h->root, addr);
    if (n == NULL || n->addr != addr || n->is_free) {
        return -EINVAL;
    }
    uint64_t end = n->addr + n->size;
    node *pred = addr > h->base ? find_le(h->root, addr - 1) : NULL;
    node *succ = end < h->base + h->size ? find_le(h->root, end) : NULL;

    h->used -= n->size;
    h->blocks--;
    h->free_blocks++;
    if (succ != NULL && succ->is_free) {
        n->size += succ->size;
        h->root = erase(h, h->root, succ->addr);
        h->free_blocks--;
    }
    if (pred != NULL && pred->is_free) {
        pred->size += n->size;
        h->root = erase(h, h->root, n->addr);
        h->free_blocks--;
        refresh(h->root, pred->addr);
    }
    else {
        n->is_free = 1;
        refresh(h->root, n->addr);
    }
    return 0;
}

int
pa_heap_find(const pa_heap *h, uint64_t addr, uint64_t *start, uint64_t *size)
{
    const node *n = find_le(h->root, addr);
    if (n == NULL || n->is_free || addr - n->addr >= n->size) {
        return -ENOENT;
    }
    *start = n->addr;
    *size = n->size;
    return 0;
}

void
pa_heap_get_stats(const pa_heap *h, pa_heap_stats *out)
{
    out->total = h->size;
    out->used = h->used;
    out->free = h->size - h->used;
    out->largest_free = h->root->max_free;
    out->blocks = h->blocks;
    out->free_blocks = h->free_blocks;
    out->peak_used = h->peak_used;
    out->failed = h->failed;
}

typedef struct walk {
    uint64_t next_addr;     /* where the next block in order must start */
    uint64_t used, blocks, free_blocks;
    int prev_free;
} walk;

/* In-order check of one subtree; returns 0 or a negative code. */
static int
check_subtree(const pa_heap *h, const node *t, walk *w)
{
    if (t == NULL) {
        return 0;
    }
    if ((t->left && t->left->prio > t->prio)
            || (t->right && t->right->prio > t->prio)) {
        return -1;                          /* heap order */
    }
    int rc = check_subtree(h, t->left, w);
    if (rc != 0) {
        return rc;
    }
    if (t->addr != w->next_addr || t->size == 0
            || t->size % h->granule != 0) {
        return -2;                          /* tiling */
    }
    if (t->is_free && w->prev_free) {
        return -3;                          /* uncoalesced neighbours */
    }
    uint64_t expect = max3(t->is_free ? t->size : 0,
                           t->left ? t->left->max_free : 0,
                           t->right ? t->right->max_free : 0);
    if (t->max_free != expect) {
        return -4;                          /* subtree maximum */
    }
    w->next_addr = t->addr + t->size;
    w->prev_free = t->is_free;
    if (t->is_free) {
        w->free_blocks++;
    }
    else {
        w->used += t->size;
        w->blocks++;
    }
    return check_subtree(h, t->right, w);
}

int
pa_heap_check(const pa_heap *h)
{
    walk w = {h->base, 0, 0, 0, 0};
    int rc = check_subtree(h, h->root, &w);
    if (rc != 0) {
        return rc;
    }
    if (w.next_addr != h->base + h->size) {
        return -5;                          /* range not covered */
    }
    if (w.used != h->used || w.blocks != h->blocks
            || w.free_blocks != h->free_blocks || h->used > h->peak_used) {
        return -6;                          /* counters */
    }
    return 0;
}
