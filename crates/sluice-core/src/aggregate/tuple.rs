//! A tuple of aggregates over the same input is an aggregate whose output is
//! the tuple of outputs: `(Count, Sum, Mean, Min, Max)` computes all five in
//! one pass.

use super::Aggregate;

macro_rules! tuple_aggregate {
    ($(($name:ident, $idx:tt)),+) => {
        impl<In: ?Sized, $($name: Aggregate<In>),+> Aggregate<In> for ($($name,)+) {
            type Acc = ($($name::Acc,)+);
            type Output = ($($name::Output,)+);

            fn init(&self) -> Self::Acc {
                ($(self.$idx.init(),)+)
            }
            #[inline]
            fn update(&self, acc: &mut Self::Acc, value: &In) {
                $(self.$idx.update(&mut acc.$idx, value);)+
            }
            fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
                $(self.$idx.merge(&mut acc.$idx, &other.$idx);)+
            }
            fn finish(&self, acc: &Self::Acc) -> Self::Output {
                ($(self.$idx.finish(&acc.$idx),)+)
            }
        }
    };
}

tuple_aggregate!((A, 0), (B, 1));
tuple_aggregate!((A, 0), (B, 1), (C, 2));
tuple_aggregate!((A, 0), (B, 1), (C, 2), (D, 3));
tuple_aggregate!((A, 0), (B, 1), (C, 2), (D, 3), (E, 4));
tuple_aggregate!((A, 0), (B, 1), (C, 2), (D, 3), (E, 4), (F, 5));
tuple_aggregate!((A, 0), (B, 1), (C, 2), (D, 3), (E, 4), (F, 5), (G, 6));
tuple_aggregate!(
    (A, 0),
    (B, 1),
    (C, 2),
    (D, 3),
    (E, 4),
    (F, 5),
    (G, 6),
    (H, 7)
);
